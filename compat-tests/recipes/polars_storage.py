import polars as pl

storage_options = {
    "aws_endpoint_url": "http://127.0.0.1:9000",
    "aws_allow_http": "true",
    "aws_virtual_hosted_style_request": "false",
    "aws_region": "us-east-1",
    "aws_access_key_id": "stowage",
    "aws_secret_access_key": "stowage-dev-secret",
}
