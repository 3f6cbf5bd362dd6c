"""The pure parts of uploading images the way the arena page does."""

from __future__ import annotations

import pytest

from shared.arena.page import action_result
from shared.jobs import ImageRef
from worker.arena.uploads import UploadFailed, action_data, attachment, file_name


def test_an_upload_is_named_after_its_digest_with_its_types_extension() -> None:
    assert file_name(ImageRef(digest="ab" * 32, media_type="image/png")) == f"image-{'ab' * 8}.png"
    assert file_name(ImageRef(digest="cd" * 32, media_type="image/jpeg")).endswith(".jpg")


def test_an_attachment_is_written_as_the_page_writes_it() -> None:
    assert attachment("k/1-a.png", "image/png", "https://r2/k") == {
        "name": "k/1-a.png",
        "contentType": "image/png",
        "url": "https://r2/k",
    }


def test_a_successful_actions_data_is_read_off_line_1_of_its_answer() -> None:
    body = '0:{"a":"$@1","f":"","b":"build"}\n1:{"success":true,"data":{"url":"https://r2/k"}}\n'
    assert action_data(action_result(body), "getSignedUrl") == {"url": "https://r2/k"}


@pytest.mark.parametrize(
    "result", [{"success": False, "error": "Invalid arguments"}, {"success": True}, ["odd"], None]
)
def test_a_failed_or_odd_action_result_is_an_upload_failure(result: object) -> None:
    with pytest.raises(UploadFailed):
        action_data(result, "generateUploadUrl")
