-- CreateEnum
CREATE TYPE "SelfTestStatus" AS ENUM ('PENDING', 'PASSED', 'FAILED');

-- CreateTable
CREATE TABLE "machine_self_test" (
    "id" SERIAL NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "requested_by_id" INTEGER,
    "status" "SelfTestStatus" NOT NULL DEFAULT 'PENDING',
    "checks" JSONB,
    "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "reported_at" TIMESTAMPTZ(3),

    CONSTRAINT "machine_self_test_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "machine_self_test_machine_id_id_idx" ON "machine_self_test"("machine_id", "id");

-- AddForeignKey
ALTER TABLE "machine_self_test" ADD CONSTRAINT "machine_self_test_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "machine_self_test" ADD CONSTRAINT "machine_self_test_requested_by_id_fkey" FOREIGN KEY ("requested_by_id") REFERENCES "user_account"("id") ON DELETE SET NULL ON UPDATE CASCADE;

