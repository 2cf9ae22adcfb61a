"""The real clfpy client against the real stack: create, list, show, delete."""

from __future__ import annotations

import contextlib
import io

import pytest
from clfpy import ServicesClient
from clfpy.services_client import (
    AuthenticationFailedException,
    BadRequestException,
    MethodNotAllowedException,
    ServiceNotFoundException,
)

from tests.client import Api
from tests.stack import Stack


def test_clfpy_lifecycle(stack: Stack, api: Api, project: str) -> None:
    srv = ServicesClient(stack.api_base)
    token = api.token
    assert token is not None
    created = srv.create_new_service(token, "clf")
    assert created["name"] == "clf"
    with pytest.raises(MethodNotAllowedException, match="already exists"):
        srv.create_new_service(token, "clf")
    with pytest.raises(BadRequestException, match="begin with a lower-case letter"):
        srv.create_new_service(token, "9lives")
    srv.create_new_service(
        token, "clf2", health_check={"rel_path": "/", "status_codes": "200", "interval": 30}
    )
    assert sorted(s["name"] for s in srv.list_services(token)) == ["clf", "clf2"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        srv.print_service_list(token)
        srv.print_service_status(token, "clf")
    text = out.getvalue()
    assert f"Deployment path: {stack.settings.gateway_public_url}/{project}-clf" in text
    assert "Service status: INACTIVE" in text
    assert "service clf created" in text
    assert srv.delete_service(token, "clf")["status"] == "DELETED"
    with pytest.raises(ServiceNotFoundException):
        srv.get_service_status(token, "clf")
    with pytest.raises(AuthenticationFailedException):
        srv.list_services("sct_" + "x" * 43)
