-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "NotificationKind" ADD VALUE 'SIGNUP_LINK';
ALTER TYPE "NotificationKind" ADD VALUE 'SIGNUP_ATTEMPT';

-- AlterEnum
ALTER TYPE "AccountTokenKind" ADD VALUE 'SIGNUP';

-- AlterTable
ALTER TABLE "account_token" ADD COLUMN     "password_hash" TEXT,
ALTER COLUMN "user_id" DROP NOT NULL;

-- AlterTable
ALTER TABLE "notification_outbox" ALTER COLUMN "user_id" DROP NOT NULL;

-- CreateIndex
CREATE INDEX "account_token_email_kind_idx" ON "account_token"("email", "kind");

-- CreateIndex
CREATE INDEX "notification_outbox_recipient_kind_created_at_idx" ON "notification_outbox"("recipient", "kind", "created_at");


-- A signup link carries the chosen password's hash and belongs to no account yet; every other token is an account's.
ALTER TABLE "account_token" ADD CONSTRAINT "account_token_signup_or_account" CHECK (("user_id" IS NULL) = ("password_hash" IS NOT NULL));
