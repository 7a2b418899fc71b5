-- CreateEnum
CREATE TYPE "MachineReportReason" AS ENUM ('NOT_AS_DESCRIBED', 'POOR_PERFORMANCE', 'NETWORK', 'GPU_ERRORS', 'DOWNTIME', 'SECURITY', 'OTHER');

-- AlterEnum
-- This migration adds more than one value to an enum.
-- With PostgreSQL versions 11 and earlier, this is not possible
-- in a single migration. This can be worked around by creating
-- multiple migrations, each migration adding only one value to
-- the enum.


ALTER TYPE "NotificationKind" ADD VALUE 'MAINTENANCE_SCHEDULED';
ALTER TYPE "NotificationKind" ADD VALUE 'MAINTENANCE_CANCELLED';

-- AlterTable
ALTER TABLE "machine" ADD COLUMN     "in_maintenance" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "removed_at" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "maintenance_window" (
    "id" SERIAL NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "starts_at" TIMESTAMPTZ(3) NOT NULL,
    "ends_at" TIMESTAMPTZ(3) NOT NULL,
    "reason" TEXT NOT NULL DEFAULT '',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "cancelled_at" TIMESTAMPTZ(3),

    CONSTRAINT "maintenance_window_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "machine_report" (
    "id" SERIAL NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "reporter_id" INTEGER NOT NULL,
    "reason" "MachineReportReason" NOT NULL,
    "text" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "machine_report_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "maintenance_window_machine_id_ends_at_idx" ON "maintenance_window"("machine_id", "ends_at");

-- CreateIndex
CREATE INDEX "maintenance_window_starts_at_idx" ON "maintenance_window"("starts_at");

-- CreateIndex
CREATE INDEX "machine_report_machine_id_id_idx" ON "machine_report"("machine_id", "id");

-- CreateIndex
CREATE INDEX "machine_report_reporter_id_created_at_idx" ON "machine_report"("reporter_id", "created_at");

-- AddForeignKey
ALTER TABLE "maintenance_window" ADD CONSTRAINT "maintenance_window_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "machine_report" ADD CONSTRAINT "machine_report_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "machine_report" ADD CONSTRAINT "machine_report_reporter_id_fkey" FOREIGN KEY ("reporter_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

