-- CreateIndex
CREATE INDEX "offer_num_gpus_gpu_ram_gpu_total_ram_score_id_compute_cap_idx" ON "offer"("num_gpus", "gpu_ram", "gpu_total_ram", "score", "id", "compute_cap");

-- CreateIndex
CREATE INDEX "offer_num_gpus_gpu_ram_gpu_total_ram_dph_total_micros_id_co_idx" ON "offer"("num_gpus", "gpu_ram", "gpu_total_ram", "dph_total_micros", "id", "compute_cap");

