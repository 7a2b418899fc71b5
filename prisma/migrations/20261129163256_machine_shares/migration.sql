-- AlterTable
ALTER TABLE "offer" ADD COLUMN     "cpu_cores_effective" DOUBLE PRECISION NOT NULL DEFAULT 0;

-- AlterTable
ALTER TABLE "instance" ADD COLUMN     "gpu_indices" INTEGER[] DEFAULT ARRAY[]::INTEGER[];


-- Existing offers: their share of the machine's CPU cores and RAM, and the disk its instances leave free.
UPDATE "offer" o
   SET "cpu_cores_effective" = floor(m.cpu_cores * o.num_gpus * 100.0 / m.num_gpus) / 100,
       "cpu_ram" = (m.cpu_ram_mb::bigint * o.num_gpus / m.num_gpus)::int,
       "disk_space" = GREATEST(0, m.disk_space_gb - COALESCE(
         (SELECT SUM(i.disk_gb) FROM "instance" i WHERE i.machine_id = m.id AND i.status <> 'DESTROYED'), 0))
  FROM "machine" m
 WHERE m.id = o.machine_id;
