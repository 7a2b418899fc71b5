-- CreateTable
CREATE TABLE "machine_vetting" (
    "id" SERIAL NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "operator_id" INTEGER,
    "verification" "VerificationState",
    "datacenter" BOOLEAN,
    "note" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "machine_vetting_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "machine_vetting_machine_id_id_idx" ON "machine_vetting"("machine_id", "id");

-- AddForeignKey
ALTER TABLE "machine_vetting" ADD CONSTRAINT "machine_vetting_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "machine_vetting" ADD CONSTRAINT "machine_vetting_operator_id_fkey" FOREIGN KEY ("operator_id") REFERENCES "user_account"("id") ON DELETE SET NULL ON UPDATE CASCADE;

