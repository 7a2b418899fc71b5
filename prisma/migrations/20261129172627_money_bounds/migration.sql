-- AlterTable
ALTER TABLE "user_account" ADD COLUMN     "metering_held_at" TIMESTAMPTZ(3),
ADD COLUMN     "metering_hold_reason" TEXT;

-- CreateIndex
CREATE INDEX "user_account_metering_held_at_idx" ON "user_account"("metering_held_at");


-- Money bounds the database enforces (not expressible in schema.prisma): balances and ledger
-- amounts within ±10^15 µ$ ($1 billion), prices and rates far below, so that the sums and
-- products metering and payouts compute stay inside bigint with room to spare.
ALTER TABLE "user_account" ADD CONSTRAINT "user_account_balance_bounds" CHECK ("balance_micros" BETWEEN -1000000000000000 AND 1000000000000000);
ALTER TABLE "ledger_entry" ADD CONSTRAINT "ledger_entry_amount_bounds" CHECK ("amount_micros" BETWEEN -1000000000000000 AND 1000000000000000);
ALTER TABLE "payment" ADD CONSTRAINT "payment_amount_positive" CHECK ("amount_micros" > 0 AND "amount_micros" <= 1000000000000000);
ALTER TABLE "payout" ADD CONSTRAINT "payout_amount_bounds" CHECK ("amount_micros" BETWEEN 0 AND 1000000000000000);
ALTER TABLE "instance" ADD CONSTRAINT "instance_price_bounds" CHECK (
  "price_per_gpu_hour_micros" BETWEEN 0 AND 1000000000
  AND "storage_price_per_gb_month_micros" BETWEEN 0 AND 1000000000
  AND "inet_up_price_per_gb_micros" BETWEEN 0 AND 1000000000
  AND "inet_down_price_per_gb_micros" BETWEEN 0 AND 1000000000
  AND coalesce("bid_per_gpu_hour_micros", 0) BETWEEN 0 AND 1000000000);
ALTER TABLE "time_accrual" ADD CONSTRAINT "time_accrual_bounds" CHECK (
  "unit_price_micros" BETWEEN 0 AND 1000000000 AND "units" BETWEEN 0 AND 10000000 AND coalesce("amount_micros", 0) BETWEEN 0 AND 1000000000000000);
ALTER TABLE "open_time_accrual" ADD CONSTRAINT "open_time_accrual_rate_bounds" CHECK ("rate_micros" BETWEEN 0 AND 10000000000000);
ALTER TABLE "bandwidth_accrual" ADD CONSTRAINT "bandwidth_accrual_bounds" CHECK (
  "unit_price_micros" BETWEEN 0 AND 1000000000 AND "bytes" >= 0 AND "amount_micros" BETWEEN 0 AND 1000000000000000);
ALTER TABLE "bandwidth_counter" ADD CONSTRAINT "bandwidth_counter_bounds" CHECK ("rx_bytes" >= 0 AND "tx_bytes" >= 0);
