-- AlterTable
ALTER TABLE "user_account" ADD COLUMN     "payouts_enabled" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE UNIQUE INDEX "user_account_stripe_connect_account_id_key" ON "user_account"("stripe_connect_account_id");

