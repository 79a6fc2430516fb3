import s3fs

fs = s3fs.S3FileSystem(
    key="stowage",
    secret="stowage-dev-secret",
    endpoint_url="http://127.0.0.1:9000",
    client_kwargs={"region_name": "us-east-1"},
    config_kwargs={"s3": {"addressing_style": "path"}},
)
