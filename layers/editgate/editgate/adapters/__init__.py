"""Everything outside the process: AWS (S3, DynamoDB, SQS, Secrets Manager), fal, image URLs.
Imports the domain only."""
