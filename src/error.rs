//! The one error type: every S3 error code Stowage emits, its HTTP status, and
//! the `<Error>` XML body. Internal causes stay attached for the log and become
//! `InternalError` on the wire.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>

use std::fmt;

use http::StatusCode;

/// The S3 error codes we emit. The variant name is the wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    AccessDenied,
    /// A CORS preflight or request that no CORS rule allows.
    AccessForbidden,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    BadRequest,
    BadDigest,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ConditionalRequestConflict,
    EntityTooLarge,
    EntityTooSmall,
    IncompleteBody,
    InsufficientStorage,
    InternalError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidBucketName,
    InvalidDigest,
    InvalidPart,
    InvalidPartNumber,
    InvalidPartOrder,
    InvalidPolicyDocument,
    InvalidRange,
    InvalidRequest,
    InvalidStorageClass,
    InvalidTag,
    InvalidURI,
    KeyTooLongError,
    MalformedACLError,
    MalformedPOSTRequest,
    MalformedPolicy,
    MaxPostPreDataLengthExceeded,
    MalformedXML,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    MissingSecurityHeader,
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchCORSConfiguration,
    NoSuchKey,
    NoSuchLifecycleConfiguration,
    NoSuchTagSet,
    NoSuchUpload,
    NotImplemented,
    PreconditionFailed,
    RequestTimeTooSkewed,
    RequestTimeout,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    XAmzContentSHA256Mismatch,
}

impl Code {
    pub fn status(self) -> StatusCode {
        use Code::*;
        match self {
            AccessDenied
            | AccessForbidden
            | InvalidAccessKeyId
            | RequestTimeTooSkewed
            | SignatureDoesNotMatch => StatusCode::FORBIDDEN,
            AuthorizationHeaderMalformed
            | AuthorizationQueryParametersError
            | BadDigest
            | BadRequest
            | EntityTooLarge
            | EntityTooSmall
            | IncompleteBody
            | InvalidArgument
            | InvalidBucketName
            | InvalidDigest
            | InvalidPart
            | InvalidPartOrder
            | InvalidPolicyDocument
            | InvalidRequest
            | InvalidStorageClass
            | InvalidTag
            | InvalidURI
            | KeyTooLongError
            | MalformedACLError
            | MalformedPOSTRequest
            | MalformedPolicy
            | MaxPostPreDataLengthExceeded
            | MalformedXML
            | MetadataTooLarge
            | MissingSecurityHeader
            | RequestTimeout
            | XAmzContentSHA256Mismatch => StatusCode::BAD_REQUEST,
            BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | BucketNotEmpty
            | ConditionalRequestConflict => StatusCode::CONFLICT,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            InvalidPartNumber | InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            MissingContentLength => StatusCode::LENGTH_REQUIRED,
            NoSuchBucket
            | NoSuchBucketPolicy
            | NoSuchCORSConfiguration
            | NoSuchKey
            | NoSuchLifecycleConfiguration
            | NoSuchTagSet
            | NoSuchUpload => StatusCode::NOT_FOUND,
            NotImplemented => StatusCode::NOT_IMPLEMENTED,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ServiceUnavailable | SlowDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn default_message(self) -> &'static str {
        use Code::*;
        match self {
            AccessDenied => "Access Denied",
            AccessForbidden => "CORSResponse: This CORS request is not allowed.",
            AuthorizationHeaderMalformed => "The authorization header is malformed.",
            AuthorizationQueryParametersError => {
                "Error parsing the X-Amz-Credential parameter or another authorization query parameter."
            }
            BadRequest => "Bad Request",
            BadDigest => {
                "The Content-MD5 or checksum you specified did not match what we received."
            }
            BucketAlreadyExists => "The requested bucket name is not available.",
            BucketAlreadyOwnedByYou => {
                "Your previous request to create the named bucket succeeded and you already own it."
            }
            BucketNotEmpty => "The bucket you tried to delete is not empty",
            ConditionalRequestConflict => {
                "A conflicting operation occurred. If using PutObject you can retry the request."
            }
            EntityTooLarge => "Your proposed upload exceeds the maximum allowed size",
            EntityTooSmall => {
                "Your proposed upload is smaller than the minimum allowed object size."
            }
            IncompleteBody => {
                "You did not provide the number of bytes specified by the Content-Length HTTP header."
            }
            InsufficientStorage => "The server's disk is below its free-space floor.",
            InternalError => "We encountered an internal error. Please try again.",
            InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our records."
            }
            InvalidArgument => "Invalid Argument",
            InvalidBucketName => "The specified bucket is not valid.",
            InvalidDigest => "The Content-MD5 you specified is not valid.",
            InvalidPart => {
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            }
            InvalidPartNumber => "The requested partnumber is not satisfiable",
            InvalidPartOrder => {
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            }
            InvalidPolicyDocument => {
                "The content of the form does not meet the conditions specified in the policy document."
            }
            InvalidRange => "The requested range is not satisfiable",
            InvalidRequest => "Invalid Request",
            InvalidStorageClass => "The storage class you specified is not valid",
            InvalidURI => "Couldn't parse the specified URI.",
            KeyTooLongError => "Your key is too long",
            MalformedACLError => {
                "The XML you provided was not well-formed or did not validate against our published schema."
            }
            MalformedPOSTRequest => {
                "The body of your POST request is not well-formed multipart/form-data."
            }
            MalformedPolicy => "Policies must be valid JSON.",
            MaxPostPreDataLengthExceeded => {
                "Your POST request fields preceding the upload file were too large."
            }
            MalformedXML => {
                "The XML you provided was not well-formed or did not validate against our published schema"
            }
            MetadataTooLarge => "Your metadata headers exceed the maximum allowed metadata size",
            MethodNotAllowed => "The specified method is not allowed against this resource.",
            MissingContentLength => "You must provide the Content-Length HTTP header.",
            MissingSecurityHeader => "Your request was missing a required header.",
            NoSuchBucket => "The specified bucket does not exist",
            NoSuchCORSConfiguration => "The CORS configuration does not exist",
            NoSuchBucketPolicy => "The bucket policy does not exist",
            NoSuchTagSet => "The TagSet does not exist",
            InvalidTag => "The tag provided was not a valid tag.",
            NoSuchKey => "The specified key does not exist.",
            NoSuchLifecycleConfiguration => "The lifecycle configuration does not exist",
            NoSuchUpload => {
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
            }
            NotImplemented => "A header or operation you provided is not implemented.",
            PreconditionFailed => "At least one of the pre-conditions you specified did not hold",
            RequestTimeout => {
                "Your socket connection to the server was not read from or written to within the timeout period."
            }
            RequestTimeTooSkewed => {
                "The difference between the request time and the current time is too large."
            }
            ServiceUnavailable | SlowDown => "Please reduce your request rate.",
            SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. Check your key and signing method."
            }
            XAmzContentSHA256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            }
        }
    }
}

/// An S3 error as sent to a client, plus the internal cause for the log.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub code: Code,
    pub message: String,
    /// Extra elements of the `<Error>` body, such as `ArgumentName` or `PartNumber`.
    pub details: Vec<(&'static str, String)>,
    /// The internal cause of an `InternalError`; logged, never sent.
    pub cause: Option<String>,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(code: Code) -> Self {
        S3Error {
            code,
            message: code.default_message().to_owned(),
            details: Vec::new(),
            cause: None,
        }
    }

    pub fn with_message(code: Code, message: impl Into<String>) -> Self {
        S3Error {
            message: message.into(),
            ..S3Error::new(code)
        }
    }

    pub fn detail(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.details.push((name, value.into()));
        self
    }

    pub fn internal(cause: impl fmt::Display) -> Self {
        S3Error {
            cause: Some(cause.to_string()),
            ..S3Error::new(Code::InternalError)
        }
    }

    pub fn invalid_argument(message: impl Into<String>, name: &str, value: &str) -> Self {
        S3Error::with_message(Code::InvalidArgument, message)
            .detail("ArgumentName", name)
            .detail("ArgumentValue", value)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for S3Error {}

impl From<Code> for S3Error {
    fn from(code: Code) -> Self {
        S3Error::new(code)
    }
}

impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> Self {
        S3Error::internal(format!("io: {e}"))
    }
}
