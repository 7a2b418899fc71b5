-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "ApiKeyScope" AS ENUM ('ACCOUNT', 'MACHINE', 'INSTANCE');

-- CreateEnum
CREATE TYPE "VerificationState" AS ENUM ('UNVERIFIED', 'VERIFIED', 'DEVERIFIED');

-- CreateEnum
CREATE TYPE "LedgerEntryKind" AS ENUM ('PAYMENT', 'ADJUSTMENT');

-- CreateTable
CREATE TABLE "user_account" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "password_hash" TEXT NOT NULL,
    "email_verified" BOOLEAN NOT NULL DEFAULT false,
    "debit_mode" BOOLEAN NOT NULL DEFAULT false,
    "balance_micros" BIGINT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "user_account_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_key" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "scope" "ApiKeyScope" NOT NULL,
    "machine_id" INTEGER,
    "instance_id" INTEGER,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMPTZ(3),
    "revoked_at" TIMESTAMPTZ(3),

    CONSTRAINT "api_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ssh_key" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "public_key" TEXT NOT NULL,
    "key_type" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "comment" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ssh_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "machine" (
    "id" SERIAL NOT NULL,
    "host_id" INTEGER NOT NULL,
    "gpu_name" TEXT NOT NULL,
    "num_gpus" INTEGER NOT NULL,
    "gpu_ram_mb" INTEGER NOT NULL,
    "compute_cap" INTEGER NOT NULL,
    "tflops_per_gpu" DOUBLE PRECISION NOT NULL,
    "gpu_mem_bw" DOUBLE PRECISION NOT NULL,
    "pcie_gen" INTEGER NOT NULL,
    "pcie_bw" DOUBLE PRECISION NOT NULL,
    "cpu_name" TEXT NOT NULL,
    "cpu_cores" INTEGER NOT NULL,
    "cpu_ram_mb" INTEGER NOT NULL,
    "disk_space_gb" DOUBLE PRECISION NOT NULL,
    "disk_bw" DOUBLE PRECISION NOT NULL,
    "inet_up_mbps" DOUBLE PRECISION NOT NULL,
    "inet_down_mbps" DOUBLE PRECISION NOT NULL,
    "cuda_max_good" DOUBLE PRECISION NOT NULL,
    "driver_version" TEXT NOT NULL,
    "country_code" TEXT NOT NULL,
    "geolocation" TEXT NOT NULL,
    "datacenter" BOOLEAN NOT NULL DEFAULT false,
    "verification" "VerificationState" NOT NULL DEFAULT 'UNVERIFIED',
    "dlperf" DOUBLE PRECISION NOT NULL,
    "reliability" DOUBLE PRECISION NOT NULL DEFAULT 0.9,
    "online" BOOLEAN NOT NULL DEFAULT true,
    "last_heartbeat_at" TIMESTAMPTZ(3),
    "listed" BOOLEAN NOT NULL DEFAULT false,
    "price_per_gpu_hour_micros" BIGINT,
    "min_bid_per_gpu_hour_micros" BIGINT,
    "storage_price_per_gb_month_micros" BIGINT,
    "inet_up_price_per_gb_micros" BIGINT,
    "inet_down_price_per_gb_micros" BIGINT,
    "min_chunk" INTEGER NOT NULL DEFAULT 1,
    "end_date" TIMESTAMPTZ(3),
    "gpus_on_demand" INTEGER NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "machine_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "offer" (
    "id" TEXT NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "host_id" INTEGER NOT NULL,
    "num_gpus" INTEGER NOT NULL,
    "gpu_name" TEXT NOT NULL,
    "gpu_ram" INTEGER NOT NULL,
    "gpu_total_ram" INTEGER NOT NULL,
    "compute_cap" INTEGER NOT NULL,
    "total_flops" DOUBLE PRECISION NOT NULL,
    "gpu_mem_bw" DOUBLE PRECISION NOT NULL,
    "pcie_bw" DOUBLE PRECISION NOT NULL,
    "cpu_cores" INTEGER NOT NULL,
    "cpu_ram" INTEGER NOT NULL,
    "disk_space" DOUBLE PRECISION NOT NULL,
    "disk_bw" DOUBLE PRECISION NOT NULL,
    "inet_up" DOUBLE PRECISION NOT NULL,
    "inet_down" DOUBLE PRECISION NOT NULL,
    "cuda_max_good" DOUBLE PRECISION NOT NULL,
    "driver_version" TEXT NOT NULL,
    "reliability" DOUBLE PRECISION NOT NULL,
    "dlperf" DOUBLE PRECISION NOT NULL,
    "price_per_gpu_micros" BIGINT NOT NULL,
    "gpu_dph_micros" BIGINT NOT NULL,
    "min_bid_micros" BIGINT NOT NULL,
    "storage_cost_micros" BIGINT NOT NULL,
    "inet_up_cost_micros" BIGINT NOT NULL,
    "inet_down_cost_micros" BIGINT NOT NULL,
    "verified" BOOLEAN NOT NULL,
    "datacenter" BOOLEAN NOT NULL,
    "geolocation" TEXT NOT NULL,
    "country_code" TEXT NOT NULL,
    "end_date" TIMESTAMPTZ(3) NOT NULL,
    "rentable" BOOLEAN NOT NULL,
    "rented" BOOLEAN NOT NULL,

    CONSTRAINT "offer_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ledger_entry" (
    "id" BIGSERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "kind" "LedgerEntryKind" NOT NULL,
    "amount_micros" BIGINT NOT NULL,
    "description" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ledger_entry_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "user_account_email_key" ON "user_account"("email");

-- CreateIndex
CREATE UNIQUE INDEX "api_key_hash_key" ON "api_key"("hash");

-- CreateIndex
CREATE INDEX "api_key_user_id_idx" ON "api_key"("user_id");

-- CreateIndex
CREATE UNIQUE INDEX "ssh_key_user_id_fingerprint_key" ON "ssh_key"("user_id", "fingerprint");

-- CreateIndex
CREATE INDEX "machine_host_id_idx" ON "machine"("host_id");

-- CreateIndex
CREATE INDEX "offer_machine_id_idx" ON "offer"("machine_id");

-- CreateIndex
CREATE INDEX "offer_gpu_name_num_gpus_idx" ON "offer"("gpu_name", "num_gpus");

-- CreateIndex
CREATE INDEX "offer_verified_rentable_dlperf_idx" ON "offer"("verified", "rentable", "dlperf");

-- CreateIndex
CREATE INDEX "ledger_entry_user_id_created_at_idx" ON "ledger_entry"("user_id", "created_at");

-- AddForeignKey
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_key" ADD CONSTRAINT "api_key_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ssh_key" ADD CONSTRAINT "ssh_key_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "machine" ADD CONSTRAINT "machine_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "offer" ADD CONSTRAINT "offer_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ledger_entry" ADD CONSTRAINT "ledger_entry_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

