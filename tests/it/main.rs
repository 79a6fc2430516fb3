//! Integration tests: the real binary, a real S3 client (aws-sdk-s3), and
//! raw HTTP for what an SDK will not send. One test binary, several modules.

mod acl;
mod auth;
mod buckets;
mod checksums;
mod conformance;
mod crash_loop;
mod disk;
mod durability;
mod harness;
mod hostile;
mod lifecycle;
mod listing;
mod mpu_checksums;
mod multinode;
mod multipart;
mod objects;
mod pg;
mod post;
mod raw;
mod readme;
mod tls;
