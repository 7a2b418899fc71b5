-- CreateEnum
CREATE TYPE "AccountTokenKind" AS ENUM ('EMAIL_VERIFICATION', 'PASSWORD_RESET');

-- AlterEnum
ALTER TYPE "PaymentKind" ADD VALUE 'DEBIT_SETTLEMENT';

-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "NotificationKind" ADD VALUE 'EMAIL_VERIFICATION';
ALTER TYPE "NotificationKind" ADD VALUE 'PASSWORD_RESET';

-- AlterTable
ALTER TABLE "user_account" ADD COLUMN     "card_fingerprint" TEXT,
ADD COLUMN     "card_verified_at" TIMESTAMPTZ(3),
ADD COLUMN     "debit_settled_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "account_token" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "kind" "AccountTokenKind" NOT NULL,
    "hash" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "used_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "account_token_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "test_credit" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "card_fingerprint" TEXT NOT NULL,
    "mailbox" TEXT NOT NULL,
    "amount_micros" BIGINT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "test_credit_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "account_token_hash_key" ON "account_token"("hash");

-- CreateIndex
CREATE INDEX "account_token_user_id_kind_idx" ON "account_token"("user_id", "kind");

-- CreateIndex
CREATE UNIQUE INDEX "test_credit_user_id_key" ON "test_credit"("user_id");

-- CreateIndex
CREATE UNIQUE INDEX "test_credit_card_fingerprint_key" ON "test_credit"("card_fingerprint");

-- CreateIndex
CREATE UNIQUE INDEX "test_credit_mailbox_key" ON "test_credit"("mailbox");

-- AddForeignKey
ALTER TABLE "account_token" ADD CONSTRAINT "account_token_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "test_credit" ADD CONSTRAINT "test_credit_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

