from pyarrow import fs

s3 = fs.S3FileSystem(
    endpoint_override="127.0.0.1:9000",
    scheme="http",
    access_key="stowage",
    secret_key="stowage-dev-secret",
    region="us-east-1",
    force_virtual_addressing=False,
)
