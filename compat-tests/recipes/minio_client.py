from minio import Minio

client = Minio(
    "127.0.0.1:9000",
    access_key="stowage",
    secret_key="stowage-dev-secret",
    region="us-east-1",
    secure=False,
)
