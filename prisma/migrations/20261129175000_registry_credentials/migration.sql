-- AlterTable
ALTER TABLE "instance" ADD COLUMN     "registry_password_encrypted" TEXT,
ADD COLUMN     "registry_username" TEXT;

-- CreateTable
CREATE TABLE "registry_credential" (
    "id" SERIAL NOT NULL,
    "user_id" INTEGER NOT NULL,
    "registry" TEXT NOT NULL,
    "username" TEXT NOT NULL,
    "password_encrypted" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "registry_credential_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "registry_credential_user_id_registry_key" ON "registry_credential"("user_id", "registry");

-- AddForeignKey
ALTER TABLE "registry_credential" ADD CONSTRAINT "registry_credential_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "user_account"("id") ON DELETE CASCADE ON UPDATE CASCADE;

