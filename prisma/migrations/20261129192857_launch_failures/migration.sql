-- CreateTable
CREATE TABLE "launch_failure" (
    "id" BIGSERIAL NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "claimed_cause" TEXT,
    "spared" BOOLEAN NOT NULL,
    "at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "launch_failure_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "launch_failure_machine_id_at_idx" ON "launch_failure"("machine_id", "at");

-- CreateIndex
CREATE INDEX "launch_failure_instance_id_idx" ON "launch_failure"("instance_id");

-- CreateIndex
CREATE INDEX "instance_image_idx" ON "instance"("image");

-- AddForeignKey
ALTER TABLE "launch_failure" ADD CONSTRAINT "launch_failure_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "launch_failure" ADD CONSTRAINT "launch_failure_instance_id_fkey" FOREIGN KEY ("instance_id") REFERENCES "instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

