-- AlterTable
ALTER TABLE "machine" ADD COLUMN     "cpu_arch" TEXT,
ADD COLUMN     "gpu_max_power_w" DOUBLE PRECISION,
ADD COLUMN     "has_avx" BOOLEAN,
ADD COLUMN     "listing_duration_seconds" INTEGER;

