-- CreateEnum
CREATE TYPE "BidStanding" AS ENUM ('WINNING', 'OUTBID', 'PREEMPTED_BY_ON_DEMAND', 'BELOW_MIN_BID', 'WAITING_FOR_MACHINE');

-- AlterTable
ALTER TABLE "instance" ADD COLUMN     "bid_price_to_win_micros" BIGINT,
ADD COLUMN     "bid_standing" "BidStanding";

-- CreateTable
CREATE TABLE "bid_change" (
    "id" BIGSERIAL NOT NULL,
    "instance_id" INTEGER NOT NULL,
    "price_micros" BIGINT NOT NULL,
    "placed_at" TIMESTAMPTZ(6) NOT NULL,
    "standing" "BidStanding",
    "price_to_win_micros" BIGINT,

    CONSTRAINT "bid_change_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "bid_change_instance_id_id_idx" ON "bid_change"("instance_id", "id");

-- AddForeignKey
ALTER TABLE "bid_change" ADD CONSTRAINT "bid_change_instance_id_fkey" FOREIGN KEY ("instance_id") REFERENCES "instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- Existing bids: the price each holds now starts its history (ranked by the next clearing).
INSERT INTO "bid_change" ("instance_id", "price_micros", "placed_at")
SELECT "id", "bid_per_gpu_hour_micros", "bid_placed_at" FROM "instance"
 WHERE "kind" = 'INTERRUPTIBLE' AND "bid_per_gpu_hour_micros" IS NOT NULL;
