export AWS_ACCESS_KEY_ID=stowage
export AWS_SECRET_ACCESS_KEY=stowage-dev-secret
export AWS_REGION=us-east-1
export AWS_CONFIG_FILE=~/.aws/stowage-config
