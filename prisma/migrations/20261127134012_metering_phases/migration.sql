-- Metering phases (domain/billing/metering.ts): each open accrual row carries its client's phase
-- (client_id % METERING_PHASES, 8), filled in for the rows already open. The phases' clocks other
-- than the first are created by the first tick, where the first one is.
ALTER TABLE "open_time_accrual" ADD COLUMN "phase" SMALLINT;
UPDATE "open_time_accrual" SET "phase" = "client_id" % 8;
ALTER TABLE "open_time_accrual" ALTER COLUMN "phase" SET NOT NULL;

-- CreateIndex
CREATE INDEX "open_time_accrual_phase_idx" ON "open_time_accrual"("phase");

-- A metering tick's candidates (status or bid changed since its clock), without scanning every instance.
CREATE INDEX "instance_status_changed_at_idx" ON "instance"("status_changed_at");

-- CreateIndex
CREATE INDEX "instance_bid_placed_at_idx" ON "instance"("bid_placed_at");
