-- AlterTable
ALTER TABLE "machine" ADD COLUMN     "direct_port_end" INTEGER DEFAULT 40199,
ADD COLUMN     "direct_port_start" INTEGER DEFAULT 40000,
ADD COLUMN     "public_address" TEXT,
ADD COLUMN     "reported_address" TEXT;

-- AlterTable
ALTER TABLE "offer" ADD COLUMN     "direct_port_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "static_ip" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "instance" ADD COLUMN     "jupyter_token" TEXT,
ADD COLUMN     "reported_ports" JSONB;

-- CreateTable
CREATE TABLE "instance_port" (
    "id" SERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "container_port" INTEGER NOT NULL,
    "protocol" TEXT NOT NULL,
    "host_port" INTEGER NOT NULL,

    CONSTRAINT "instance_port_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "instance_ssh_key" (
    "id" SERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "public_key" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "instance_ssh_key_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "instance_port_instance_id_idx" ON "instance_port"("instance_id");

-- CreateIndex
CREATE UNIQUE INDEX "instance_port_machine_id_host_port_key" ON "instance_port"("machine_id", "host_port");

-- CreateIndex
CREATE UNIQUE INDEX "instance_ssh_key_instance_id_fingerprint_key" ON "instance_ssh_key"("instance_id", "fingerprint");

-- AddForeignKey
ALTER TABLE "instance_port" ADD CONSTRAINT "instance_port_instance_id_fkey" FOREIGN KEY ("instance_id") REFERENCES "instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "instance_port" ADD CONSTRAINT "instance_port_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "instance_ssh_key" ADD CONSTRAINT "instance_ssh_key_instance_id_fkey" FOREIGN KEY ("instance_id") REFERENCES "instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

