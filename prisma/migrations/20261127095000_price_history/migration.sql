-- Pricing history (domain/market/). Hand-written: declarative partitioning is not expressible in
-- schema.prisma, so these tables live here only (test/migrations.test.ts leaves price_* out of its
-- comparison). They reference no other table, so this migration runs in any order with init.
--
-- The three tables share one shape, so that a rollup is the same set-based SQL at any level:
-- a minute sample is a bucket of one sample. GPU counts are summed over the bucket's samples
-- (GPU-minutes); prices are per GPU-hour in micro-dollars, over the listed machines (one price
-- each); bids are the current bids of running interruptible instances.

CREATE TABLE price_sample (
  bucket_start        timestamptz      NOT NULL,
  gpu_name            text             NOT NULL,
  samples             integer          NOT NULL,
  machines_sum        bigint           NOT NULL,
  offers_sum          bigint           NOT NULL,
  gpus_total_sum      bigint           NOT NULL,
  gpus_rented_sum     bigint           NOT NULL,
  gpus_available_sum  bigint           NOT NULL,
  price_min           bigint,
  price_p50           bigint,
  price_p90           bigint,
  price_sum           bigint           NOT NULL,
  price_count         bigint           NOT NULL,
  bid_min             bigint,
  bid_p50             bigint,
  bid_p90             bigint,
  bid_sum             bigint           NOT NULL,
  bid_count           bigint           NOT NULL,
  dlperf_per_dollar   double precision,
  PRIMARY KEY (gpu_name, bucket_start)
) PARTITION BY RANGE (bucket_start);

-- Hours and days: small enough for plain tables (LIKE copies the primary key); hours past
-- retention are deleted.
CREATE TABLE price_rollup_hour (LIKE price_sample INCLUDING ALL);
CREATE TABLE price_rollup_day (LIKE price_sample INCLUDING ALL);
