"""boto3 and object and bucket tagging: the x-amz-tagging header on writes,
the tagging sub-resources, copies, and S3's limits."""

from helpers import MiB, s3_error


def tag_set(s3, bucket, key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def test_object_tags_on_put_and_through_the_tagging_calls(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="project=blue&team=a%20b")
    assert tag_set(s3, bucket, "k") == {"project": "blue", "team": "a b"}
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    s3.put_object_tagging(Bucket=bucket, Key="k",
                          Tagging={"TagSet": [{"Key": "only", "Value": "é"}]})
    assert tag_set(s3, bucket, "k") == {"only": "é"}
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert tag_set(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    with s3_error("NoSuchKey", 404):
        s3.get_object_tagging(Bucket=bucket, Key="missing")


def test_s3_tag_limits(s3, bucket):
    eleven = "&".join(f"k{i}=v" for i in range(11))
    with s3_error("InvalidTag", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=eleven)
    with s3_error("404", 404):  # HEAD errors carry no body
        s3.head_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for bad in ([{"Key": "k" * 129, "Value": ""}], [{"Key": "k", "Value": "v" * 257}],
                [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]):
        with s3_error("InvalidTag", 400):
            s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": bad})


def test_tags_follow_multipart_uploads_and_copies(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=raw")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * MiB)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert tag_set(s3, bucket, "mp") == {"stage": "raw"}
    s3.copy_object(Bucket=bucket, Key="kept", CopySource=f"{bucket}/mp")
    assert tag_set(s3, bucket, "kept") == {"stage": "raw"}
    s3.copy_object(Bucket=bucket, Key="new", CopySource=f"{bucket}/mp",
                   TaggingDirective="REPLACE", Tagging="stage=cooked")
    assert tag_set(s3, bucket, "new") == {"stage": "cooked"}
    assert tag_set(s3, bucket, "mp") == {"stage": "raw"}


def test_bucket_tags(s3, bucket):
    with s3_error("NoSuchTagSet", 404):
        s3.get_bucket_tagging(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [
        {"Key": "cost-center", "Value": "42"}, {"Key": "env", "Value": "ci"}]})
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {t["Key"]: t["Value"] for t in got} == {"cost-center": "42", "env": "ci"}
    s3.delete_bucket_tagging(Bucket=bucket)
    with s3_error("NoSuchTagSet", 404):
        s3.get_bucket_tagging(Bucket=bucket)
