-- AlterTable
ALTER TABLE "user_account" ADD COLUMN     "operator" BOOLEAN NOT NULL DEFAULT false;

