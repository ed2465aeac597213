"""The GAR client through a fake ArtifactRegistryAsyncClient: parsing, retries, batch deletes."""

from __future__ import annotations

import pytest
from fake_gar import FakeGAR, gar_image
from google.api_core.exceptions import InternalServerError, NotFound, ServiceUnavailable
from google.auth.exceptions import DefaultCredentialsError, RefreshError, TransportError
from google.cloud.artifactregistry_v1 import BatchDeleteVersionsRequest, ListDockerImagesRequest

from nublado.config.images import GARSourceConfig
from nublado.images.errors import RegistryError
from nublado.images.gar import GARClient, GARVersion, parse_image_uri
from nublado.images.retry import RetryPolicy

SOURCE = GARSourceConfig(
    type="google",
    location="us-central1",
    project_id="rubin-shared-services-71ec",
    repository="sciplat",
    image="sciplat-lab",
)
PARENT = "projects/rubin-shared-services-71ec/locations/us-central1/repositories/sciplat"
PACKAGE = f"{PARENT}/packages/sciplat-lab"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def retry(sleeps: list[float]) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RetryPolicy(attempts=3, base_delay=2.0, max_delay=10.0, sleep=sleep, rand=lambda: 1.0)


def test_parse_image_uri() -> None:
    uri = "us-central1-docker.pkg.dev/p/r/sciplat-lab@sha256:1234"
    assert parse_image_uri(uri) == ("sciplat-lab", "sha256:1234")


async def test_list_versions_skips_other_images_and_untagged(retry: RetryPolicy) -> None:
    fake = FakeGAR(
        [
            gar_image("sha256:5678", "w_2077_43", "recommended", size=1_000_000),
            gar_image("sha256:9999", "w_2077_43", image="sciplat-lab-other"),
            gar_image("sha256:0000"),  # untagged
            gar_image("sha256:1234", "d_2077_10_23"),  # size unknown (0)
        ]
    )

    versions = await GARClient(fake, retry).list_versions(SOURCE)

    assert versions == [
        GARVersion(("w_2077_43", "recommended"), "sha256:5678", 1_000_000),
        GARVersion(("d_2077_10_23",), "sha256:1234", None),
    ]
    (request,) = fake.list_requests
    assert isinstance(request, ListDockerImagesRequest)
    assert request.parent == PARENT


@pytest.mark.parametrize(
    "errors", [[InternalServerError("boom")], [ServiceUnavailable("x"), InternalServerError("y")]]
)
async def test_list_retries_500_and_503(
    retry: RetryPolicy, sleeps: list[float], errors: list[Exception]
) -> None:
    fake = FakeGAR([gar_image("sha256:1", "w_2077_41")])
    fake.list_errors = list(errors)

    versions = await GARClient(fake, retry).list_versions(SOURCE)

    assert [v.tags for v in versions] == [("w_2077_41",)]
    assert len(fake.list_requests) == len(errors) + 1
    assert sleeps == [2.0, 4.0][: len(errors)]


async def test_list_retries_are_bounded_with_no_extra_call(
    retry: RetryPolicy, sleeps: list[float]
) -> None:
    fake = FakeGAR()
    fake.list_errors = [
        ServiceUnavailable("a"),
        ServiceUnavailable("b"),
        ServiceUnavailable("c"),
        ServiceUnavailable("d"),
    ]

    with pytest.raises(RegistryError) as info:
        await GARClient(fake, retry).list_versions(SOURCE)
    assert str(info.value) == f"Listing images in {PARENT} failed after 3 tries: 503 c"
    assert len(fake.list_requests) == 3
    assert sleeps == [2.0, 4.0]


async def test_an_empty_list_is_not_retried(retry: RetryPolicy) -> None:
    fake = FakeGAR()

    assert await GARClient(fake, retry).list_versions(SOURCE) == []
    assert len(fake.list_requests) == 1  # upstream made one more call on an empty list


async def test_other_api_errors_are_not_retried(retry: RetryPolicy, sleeps: list[float]) -> None:
    fake = FakeGAR()
    fake.list_errors = [NotFound("no such repository")]

    with pytest.raises(RegistryError) as info:
        await GARClient(fake, retry).list_versions(SOURCE)
    assert str(info.value) == f"Listing images in {PARENT} failed: 404 no such repository"
    assert (len(fake.list_requests), sleeps) == (1, [])


async def test_delete_versions_deduplicates_and_batches_by_50(retry: RetryPolicy) -> None:
    digests = [f"sha256:{n:04d}" for n in range(120)]
    fake = FakeGAR()

    await GARClient(fake, retry).delete_versions(SOURCE, [*digests, digests[0], digests[119]])

    assert [len(names) for names in fake.deleted_names] == [50, 50, 20]
    assert [name for names in fake.deleted_names for name in names] == [
        f"{PACKAGE}/versions/{digest}" for digest in digests
    ]
    assert all(isinstance(request, BatchDeleteVersionsRequest) for request in fake.delete_requests)
    assert {request.parent for request in fake.delete_requests} == {PACKAGE}


async def test_delete_nothing_sends_nothing(retry: RetryPolicy) -> None:
    fake = FakeGAR()

    await GARClient(fake, retry).delete_versions(SOURCE, [])
    assert fake.delete_requests == []


async def test_delete_errors_are_registry_errors(retry: RetryPolicy) -> None:
    class Refusing(FakeGAR):
        async def batch_delete_versions(self, request: object) -> None:
            raise InternalServerError("backend")

    with pytest.raises(RegistryError) as info:
        await GARClient(Refusing(), retry).delete_versions(SOURCE, ["sha256:1"])
    assert str(info.value) == f"Deleting versions in {PACKAGE} failed: 500 backend"


async def test_a_long_running_delete_is_awaited(retry: RetryPolicy) -> None:
    finished: list[bool] = []

    class Operation:
        async def result(self) -> None:
            finished.append(True)

    class WithOperation(FakeGAR):
        async def batch_delete_versions(self, request: object) -> Operation:
            return Operation()

    await GARClient(WithOperation(), retry).delete_versions(SOURCE, ["sha256:1"])
    assert finished == [True]


AUTH_ERRORS = [
    (RefreshError("invalid_grant: Token has been expired or revoked."), "invalid_grant: Token"),
    (TransportError("Failed to retrieve http://metadata/token\nfrom the metadata"), "Failed to"),
    (DefaultCredentialsError("Your default credentials were not found."), "Your default"),
]
AUTH_IDS = ["refresh", "transport", "default-credentials"]


@pytest.mark.parametrize(("error", "start"), AUTH_ERRORS, ids=AUTH_IDS)
async def test_google_auth_errors_listing_are_registry_errors(
    retry: RetryPolicy, sleeps: list[float], error: Exception, start: str
) -> None:
    fake = FakeGAR()
    fake.list_errors = [error]

    with pytest.raises(RegistryError) as info:
        await GARClient(fake, retry).list_versions(SOURCE)
    message = str(info.value)
    assert message.startswith(f"Listing images in {PARENT} failed: {start}")
    assert "\n" not in message
    assert (len(fake.list_requests), sleeps) == (1, [])


@pytest.mark.parametrize(("error", "start"), AUTH_ERRORS, ids=AUTH_IDS)
async def test_google_auth_errors_deleting_are_registry_errors(
    retry: RetryPolicy, error: Exception, start: str
) -> None:
    fake = FakeGAR()
    fake.delete_errors = [error]

    with pytest.raises(RegistryError) as info:
        await GARClient(fake, retry).delete_versions(SOURCE, ["sha256:1"])
    assert str(info.value).startswith(f"Deleting versions in {PACKAGE} failed: {start}")
    assert "\n" not in str(info.value)


async def test_delete_reports_each_batch_deleted_before_a_failure(retry: RetryPolicy) -> None:
    digests = [f"sha256:{n:04d}" for n in range(120)]
    fake = FakeGAR()
    fake.delete_errors = [None, RefreshError("revoked")]
    done: list[list[str]] = []

    with pytest.raises(RegistryError, match="failed: revoked$"):
        await GARClient(fake, retry).delete_versions(SOURCE, digests, on_deleted=done.append)
    assert done == [digests[:50]]
    assert len(fake.delete_requests) == 2
