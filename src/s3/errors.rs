//! S3's error document, as the S3 front-end renders every refusal.

use crate::error::S3Error;
use crate::xml::XmlWriter;

/// The standard `<Error>` document: code, message, details, resource and
/// request id.
pub fn document(e: &S3Error, resource: &str, request_id: &str) -> String {
    let mut w = XmlWriter::new();
    w.open("Error");
    w.elem("Code", &format!("{:?}", e.code));
    w.elem("Message", &e.message);
    for (name, value) in &e.details {
        w.elem(name, value);
    }
    w.elem("Resource", resource);
    w.elem("RequestId", request_id);
    w.close("Error");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use http::StatusCode;

    #[test]
    fn error_xml_has_code_message_resource_and_request_id() {
        let e = S3Error::new(Code::NoSuchKey);
        assert_eq!(
            document(&e, "/b/k", "abc"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message><Resource>/b/k</Resource>\
             <RequestId>abc</RequestId></Error>"
        );
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn details_are_rendered_between_message_and_resource() {
        let e = S3Error::new(Code::EntityTooSmall)
            .detail("PartNumber", "1")
            .detail("MinSizeAllowed", "5242880");
        let xml = document(&e, "/b/k", "id");
        assert!(xml.contains(
            "<PartNumber>1</PartNumber><MinSizeAllowed>5242880</MinSizeAllowed><Resource>"
        ));
    }
}
