-- CreateEnum
CREATE TYPE "ApiKeyPermission" AS ENUM ('READ', 'INSTANCES', 'BILLING', 'MACHINES', 'KEYS');

-- AlterEnum
ALTER TYPE "ApiKeyScope" ADD VALUE 'SESSION';

-- AlterTable
ALTER TABLE "api_key" ADD COLUMN     "expires_at" TIMESTAMPTZ(3),
ADD COLUMN     "permissions" "ApiKeyPermission"[] DEFAULT ARRAY['READ', 'INSTANCES', 'BILLING', 'MACHINES', 'KEYS']::"ApiKeyPermission"[];

