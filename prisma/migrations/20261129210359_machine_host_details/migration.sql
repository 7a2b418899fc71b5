-- AlterTable
ALTER TABLE "machine" ADD COLUMN     "cpu_ghz" DOUBLE PRECISION,
ADD COLUMN     "gpu_max_temp_c" INTEGER,
ADD COLUMN     "mobo_name" TEXT,
ADD COLUMN     "ubuntu_version" TEXT;

