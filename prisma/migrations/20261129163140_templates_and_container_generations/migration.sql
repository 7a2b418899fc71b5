-- AlterTable
ALTER TABLE "instance" ADD COLUMN     "args" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "reboot_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "recycle_count" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "template_id" INTEGER;

-- CreateTable
CREATE TABLE "template" (
    "id" SERIAL NOT NULL,
    "owner_id" INTEGER,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "image" TEXT NOT NULL,
    "tag" TEXT NOT NULL DEFAULT 'latest',
    "launch_mode" "LaunchMode" NOT NULL,
    "docker_options" TEXT NOT NULL DEFAULT '',
    "onstart" TEXT NOT NULL DEFAULT '',
    "args" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "recommended_disk_gb" INTEGER NOT NULL,
    "public" BOOLEAN NOT NULL DEFAULT false,
    "recommended" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "template_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "template_owner_id_id_idx" ON "template"("owner_id", "id");

-- CreateIndex
CREATE INDEX "template_public_id_idx" ON "template"("public", "id");

-- AddForeignKey
ALTER TABLE "instance" ADD CONSTRAINT "instance_template_id_fkey" FOREIGN KEY ("template_id") REFERENCES "template"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "template" ADD CONSTRAINT "template_owner_id_fkey" FOREIGN KEY ("owner_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- The platform's recommended templates.
INSERT INTO "template" ("name", "description", "image", "tag", "launch_mode", "docker_options", "recommended_disk_gb", "public", "recommended") VALUES
  ('PyTorch', 'PyTorch with CUDA and cuDNN, Jupyter on port 8080.', 'pytorch/pytorch', '2.5.1-cuda12.4-cudnn9-runtime', 'JUPYTER', '', 32, true, true),
  ('NVIDIA CUDA', 'The CUDA toolkit on Ubuntu 22.04, with SSH.', 'nvidia/cuda', '12.4.1-devel-ubuntu22.04', 'SSH', '', 20, true, true),
  ('Ubuntu', 'A plain Ubuntu 22.04, with SSH.', 'ubuntu', '22.04', 'SSH', '', 10, true, true);
