-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "ApiKeyScope" AS ENUM ('ACCOUNT', 'MACHINE', 'INSTANCE');

-- CreateEnum
CREATE TYPE "VerificationState" AS ENUM ('UNVERIFIED', 'VERIFIED', 'DEVERIFIED');

-- CreateEnum
CREATE TYPE "LedgerEntryKind" AS ENUM ('PAYMENT', 'ADJUSTMENT', 'CHARGE', 'EARNING', 'REFUND', 'PAYOUT');

-- CreateEnum
CREATE TYPE "ChargeCategory" AS ENUM ('GPU', 'STORAGE', 'BANDWIDTH_UP', 'BANDWIDTH_DOWN');

-- CreateEnum
CREATE TYPE "RentalKind" AS ENUM ('ON_DEMAND', 'INTERRUPTIBLE');

-- CreateEnum
CREATE TYPE "LaunchMode" AS ENUM ('SSH', 'JUPYTER', 'ENTRYPOINT');

-- CreateEnum
CREATE TYPE "InstanceStatus" AS ENUM ('SCHEDULING', 'LOADING', 'RUNNING', 'PAUSED', 'STOPPED', 'EXITED', 'DESTROYED');

-- CreateEnum
CREATE TYPE "IntendedStatus" AS ENUM ('RUNNING', 'STOPPED');

-- CreateEnum
CREATE TYPE "PaymentKind" AS ENUM ('CHECKOUT', 'AUTO_BILL');

-- CreateEnum
CREATE TYPE "PaymentStatus" AS ENUM ('PENDING', 'SUCCEEDED', 'FAILED', 'EXPIRED');

-- CreateEnum
CREATE TYPE "PayoutStatus" AS ENUM ('PENDING', 'PAID', 'FAILED', 'SKIPPED');

-- CreateEnum
CREATE TYPE "NotificationKind" AS ENUM ('BALANCE_ALERT', 'AUTO_BILL_FAILED');

-- CreateTable
CREATE TABLE "user_account" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "password_hash" TEXT NOT NULL,
    "email_verified" BOOLEAN NOT NULL DEFAULT false,
    "debit_mode" BOOLEAN NOT NULL DEFAULT false,
    "balance_micros" BIGINT NOT NULL DEFAULT 0,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "stripe_customer_id" TEXT,
    "stripe_payment_method_id" TEXT,
    "saved_card_label" TEXT,
    "auto_bill_threshold_micros" BIGINT,
    "auto_bill_amount_micros" BIGINT,
    "auto_bill_crossed_at" TIMESTAMPTZ(3),
    "balance_alert_threshold_micros" BIGINT,
    "balance_alert_crossed_at" TIMESTAMPTZ(3),
    "stripe_connect_account_id" TEXT,

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
    "metrics" JSONB,
    "reliability_good" DOUBLE PRECISION NOT NULL DEFAULT 77760,
    "reliability_weight" DOUBLE PRECISION NOT NULL DEFAULT 86400,
    "reliability_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "assignments_revision" BIGINT NOT NULL DEFAULT 0,
    "listed" BOOLEAN NOT NULL DEFAULT false,
    "price_per_gpu_hour_micros" BIGINT,
    "min_bid_per_gpu_hour_micros" BIGINT,
    "storage_price_per_gb_month_micros" BIGINT,
    "inet_up_price_per_gb_micros" BIGINT,
    "inet_down_price_per_gb_micros" BIGINT,
    "min_chunk" INTEGER NOT NULL DEFAULT 1,
    "end_date" TIMESTAMPTZ(3),
    "gpus_on_demand" INTEGER NOT NULL DEFAULT 0,
    "preempt_grace_seconds" INTEGER NOT NULL DEFAULT 5,
    "clearing_requested_at" TIMESTAMPTZ(3),
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
    "gpus_free_of_on_demand" INTEGER NOT NULL DEFAULT 0,
    "winning_bid_micros" BIGINT,
    "dph_total_micros" BIGINT NOT NULL,
    "dlperf_per_dphtotal" DOUBLE PRECISION NOT NULL,
    "score" DOUBLE PRECISION NOT NULL,

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
    "category" "ChargeCategory",
    "period_start" TIMESTAMPTZ(3),

    CONSTRAINT "ledger_entry_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "metering_clock" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "metered_until" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "metering_clock_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "time_accrual" (
    "id" BIGSERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "client_id" INTEGER NOT NULL,
    "host_id" INTEGER NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "category" "ChargeCategory" NOT NULL,
    "period_start" TIMESTAMPTZ(3) NOT NULL,
    "unit_price_micros" BIGINT NOT NULL,
    "units" INTEGER NOT NULL,
    "started_at" TIMESTAMPTZ(3) NOT NULL,
    "ended_at" TIMESTAMPTZ(3),
    "seconds" BIGINT,
    "amount_micros" BIGINT,

    CONSTRAINT "time_accrual_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "open_time_accrual" (
    "accrual_id" BIGINT NOT NULL,
    "client_id" INTEGER NOT NULL,
    "host_id" INTEGER NOT NULL,
    "category" "ChargeCategory" NOT NULL,
    "rate_micros" BIGINT NOT NULL,
    "started_sec" BIGINT NOT NULL,

    CONSTRAINT "open_time_accrual_pkey" PRIMARY KEY ("accrual_id")
);

-- CreateTable
CREATE TABLE "bandwidth_accrual" (
    "id" BIGSERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "client_id" INTEGER NOT NULL,
    "host_id" INTEGER NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "category" "ChargeCategory" NOT NULL,
    "period_start" TIMESTAMPTZ(3) NOT NULL,
    "unit_price_micros" BIGINT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "amount_micros" BIGINT NOT NULL,

    CONSTRAINT "bandwidth_accrual_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "bandwidth_counter" (
    "instance_id" INTEGER NOT NULL,
    "rx_bytes" BIGINT NOT NULL,
    "tx_bytes" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "bandwidth_counter_pkey" PRIMARY KEY ("instance_id")
);

-- CreateTable
CREATE TABLE "instance" (
    "id" SERIAL NOT NULL,
    "client_id" INTEGER NOT NULL,
    "machine_id" INTEGER NOT NULL,
    "kind" "RentalKind" NOT NULL,
    "num_gpus" INTEGER NOT NULL,
    "price_per_gpu_hour_micros" BIGINT NOT NULL,
    "storage_price_per_gb_month_micros" BIGINT NOT NULL,
    "inet_up_price_per_gb_micros" BIGINT NOT NULL,
    "inet_down_price_per_gb_micros" BIGINT NOT NULL,
    "end_date" TIMESTAMPTZ(3) NOT NULL,
    "bid_per_gpu_hour_micros" BIGINT,
    "bid_placed_at" TIMESTAMPTZ(6) NOT NULL,
    "image" TEXT NOT NULL,
    "disk_gb" INTEGER NOT NULL,
    "launch_mode" "LaunchMode" NOT NULL,
    "onstart" TEXT NOT NULL,
    "env" JSONB NOT NULL,
    "ports" TEXT[],
    "label" TEXT,
    "status" "InstanceStatus" NOT NULL,
    "intended_status" "IntendedStatus" NOT NULL,
    "status_message" TEXT,
    "status_changed_at" TIMESTAMPTZ(6) NOT NULL,
    "preempt_grace_seconds" INTEGER,
    "idempotency_key" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "destroyed_at" TIMESTAMPTZ(3),

    CONSTRAINT "instance_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "instance_status_change" (
    "id" BIGSERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "from_status" "InstanceStatus",
    "to_status" "InstanceStatus" NOT NULL,
    "event" TEXT NOT NULL,
    "message" TEXT,
    "at" TIMESTAMPTZ(6) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "instance_status_change_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "payment" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "kind" "PaymentKind" NOT NULL,
    "status" "PaymentStatus" NOT NULL DEFAULT 'PENDING',
    "amount_micros" BIGINT NOT NULL,
    "stripe_checkout_session_id" TEXT,
    "stripe_payment_intent_id" TEXT,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "failure_message" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMPTZ(3),

    CONSTRAINT "payment_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "payout" (
    "id" SERIAL NOT NULL,
    "host_id" INTEGER NOT NULL,
    "period_start" TIMESTAMPTZ(3) NOT NULL,
    "amount_micros" BIGINT NOT NULL,
    "status" "PayoutStatus" NOT NULL,
    "destination" TEXT,
    "stripe_transfer_id" TEXT,
    "note" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completed_at" TIMESTAMPTZ(3),

    CONSTRAINT "payout_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "notification_outbox" (
    "id" BIGSERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "kind" "NotificationKind" NOT NULL,
    "recipient" TEXT NOT NULL,
    "subject" TEXT NOT NULL,
    "body" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,

    CONSTRAINT "notification_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "user_account_email_key" ON "user_account"("email");

-- CreateIndex
CREATE UNIQUE INDEX "user_account_stripe_customer_id_key" ON "user_account"("stripe_customer_id");

-- CreateIndex
CREATE UNIQUE INDEX "api_key_hash_key" ON "api_key"("hash");

-- CreateIndex
CREATE INDEX "api_key_user_id_idx" ON "api_key"("user_id");

-- CreateIndex
CREATE UNIQUE INDEX "ssh_key_user_id_fingerprint_key" ON "ssh_key"("user_id", "fingerprint");

-- CreateIndex
CREATE INDEX "machine_host_id_idx" ON "machine"("host_id");

-- CreateIndex
CREATE INDEX "machine_clearing_requested_at_idx" ON "machine"("clearing_requested_at");

-- CreateIndex
CREATE INDEX "offer_machine_id_idx" ON "offer"("machine_id");

-- CreateIndex
CREATE INDEX "offer_verified_rentable_dlperf_idx" ON "offer"("verified", "rentable", "dlperf");

-- CreateIndex
CREATE INDEX "offer_score_id_num_gpus_gpu_ram_gpu_total_ram_compute_cap_idx" ON "offer"("score", "id", "num_gpus", "gpu_ram", "gpu_total_ram", "compute_cap");

-- CreateIndex
CREATE INDEX "offer_dph_total_micros_id_num_gpus_gpu_ram_gpu_total_ram_co_idx" ON "offer"("dph_total_micros", "id", "num_gpus", "gpu_ram", "gpu_total_ram", "compute_cap");

-- CreateIndex
CREATE INDEX "offer_dlperf_per_dphtotal_id_num_gpus_gpu_ram_gpu_total_ram_idx" ON "offer"("dlperf_per_dphtotal", "id", "num_gpus", "gpu_ram", "gpu_total_ram", "compute_cap");

-- CreateIndex
CREATE INDEX "offer_inet_down_id_idx" ON "offer"("inet_down", "id");

-- CreateIndex
CREATE INDEX "offer_min_bid_micros_id_idx" ON "offer"("min_bid_micros", "id");

-- CreateIndex
CREATE INDEX "offer_gpu_name_score_id_idx" ON "offer"("gpu_name", "score", "id");

-- CreateIndex
CREATE INDEX "offer_gpu_name_dph_total_micros_id_idx" ON "offer"("gpu_name", "dph_total_micros", "id");

-- CreateIndex
CREATE INDEX "ledger_entry_user_id_created_at_idx" ON "ledger_entry"("user_id", "created_at");

-- CreateIndex
CREATE UNIQUE INDEX "ledger_entry_user_id_kind_category_period_start_key" ON "ledger_entry"("user_id", "kind", "category", "period_start");

-- CreateIndex
CREATE INDEX "time_accrual_instance_id_category_idx" ON "time_accrual"("instance_id", "category");

-- CreateIndex
CREATE INDEX "time_accrual_ended_at_idx" ON "time_accrual"("ended_at");

-- CreateIndex
CREATE INDEX "time_accrual_client_id_period_start_idx" ON "time_accrual"("client_id", "period_start");

-- CreateIndex
CREATE INDEX "time_accrual_machine_id_period_start_idx" ON "time_accrual"("machine_id", "period_start");

-- CreateIndex
CREATE INDEX "bandwidth_accrual_client_id_period_start_idx" ON "bandwidth_accrual"("client_id", "period_start");

-- CreateIndex
CREATE INDEX "bandwidth_accrual_machine_id_period_start_idx" ON "bandwidth_accrual"("machine_id", "period_start");

-- CreateIndex
CREATE UNIQUE INDEX "bandwidth_accrual_instance_id_category_period_start_unit_pr_key" ON "bandwidth_accrual"("instance_id", "category", "period_start", "unit_price_micros");

-- CreateIndex
CREATE INDEX "instance_client_id_id_idx" ON "instance"("client_id", "id");

-- CreateIndex
CREATE INDEX "instance_machine_id_status_idx" ON "instance"("machine_id", "status");

-- CreateIndex
CREATE INDEX "instance_status_end_date_idx" ON "instance"("status", "end_date");

-- CreateIndex
CREATE UNIQUE INDEX "instance_client_id_idempotency_key_key" ON "instance"("client_id", "idempotency_key");

-- CreateIndex
CREATE INDEX "instance_status_change_instance_id_id_idx" ON "instance_status_change"("instance_id", "id");

-- CreateIndex
CREATE UNIQUE INDEX "payment_stripe_checkout_session_id_key" ON "payment"("stripe_checkout_session_id");

-- CreateIndex
CREATE UNIQUE INDEX "payment_stripe_payment_intent_id_key" ON "payment"("stripe_payment_intent_id");

-- CreateIndex
CREATE INDEX "payment_user_id_created_at_idx" ON "payment"("user_id", "created_at");

-- CreateIndex
CREATE INDEX "payment_kind_status_idx" ON "payment"("kind", "status");

-- CreateIndex
CREATE UNIQUE INDEX "payout_stripe_transfer_id_key" ON "payout"("stripe_transfer_id");

-- CreateIndex
CREATE INDEX "payout_status_idx" ON "payout"("status");

-- CreateIndex
CREATE UNIQUE INDEX "payout_host_id_period_start_key" ON "payout"("host_id", "period_start");

-- CreateIndex
CREATE INDEX "notification_outbox_sent_at_id_idx" ON "notification_outbox"("sent_at", "id");

-- CreateIndex
CREATE INDEX "notification_outbox_user_id_created_at_idx" ON "notification_outbox"("user_id", "created_at");

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

-- AddForeignKey
ALTER TABLE "open_time_accrual" ADD CONSTRAINT "open_time_accrual_accrual_id_fkey" FOREIGN KEY ("accrual_id") REFERENCES "time_accrual"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "instance" ADD CONSTRAINT "instance_client_id_fkey" FOREIGN KEY ("client_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "instance" ADD CONSTRAINT "instance_machine_id_fkey" FOREIGN KEY ("machine_id") REFERENCES "machine"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "instance_status_change" ADD CONSTRAINT "instance_status_change_instance_id_fkey" FOREIGN KEY ("instance_id") REFERENCES "instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "payment" ADD CONSTRAINT "payment_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "payout" ADD CONSTRAINT "payout_host_id_fkey" FOREIGN KEY ("host_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "notification_outbox" ADD CONSTRAINT "notification_outbox_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

