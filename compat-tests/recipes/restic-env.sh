export AWS_ACCESS_KEY_ID=stowage
export AWS_SECRET_ACCESS_KEY=stowage-dev-secret
export AWS_DEFAULT_REGION=us-east-1
export RESTIC_REPOSITORY=s3:http://127.0.0.1:9000/backups
export RESTIC_PASSWORD_FILE=~/.config/restic/password
