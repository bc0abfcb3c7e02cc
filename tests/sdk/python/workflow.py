"""The seed's workflow through the official CloudAPI Python SDK, unmodified, against stagegate.

Run by tests/cloudapi_sdk.rs in phases (argv[1]); settings come from the environment:
  CLOUDAPI_ENDPOINT host:port of the admin listener     CLOUDAPI_AK / CLOUDAPI_SK   the access key
  CLOUDAPI_SIGNATURE v3 (default ACS3-HMAC-SHA256) | v2 (RPC HMAC-SHA1)
  CLOUDAPI_SUFFIX    makes names unique                  UPSTREAM_TEST/_RELEASE/_TEST2  backends
  CLOUDAPI_STATE     JSON of the ids the setup phase printed (for the later phases)
Each phase checks what it sees (AssertionError on a mismatch) and prints one JSON line last.
"""
import json
import os
import sys
import time

from alibabacloud_cloudapi20160714 import models as m
from alibabacloud_cloudapi20160714.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils

E = os.environ


def client(secret=None, key=None):
    cfg = open_api_models.Config(
        access_key_id=key or E["CLOUDAPI_AK"],
        access_key_secret=secret or E["CLOUDAPI_SK"],
        endpoint=E["CLOUDAPI_ENDPOINT"],
        protocol="http",
        region_id="cn-hangzhou",
    )
    if E.get("CLOUDAPI_SIGNATURE") == "v2":
        cfg.signature_algorithm = "v2"
    return Client(cfg)


def expect_error(code, fn):
    try:
        fn()
    except Exception as e:  # the SDK raises Tea's ClientException / ServerException
        got = getattr(e, "code", None)
        assert got == code, f"expected {code}, got {got}: {e}"
        return str(type(e).__name__)
    raise AssertionError(f"expected {code}, the call succeeded")


def http_model(url):
    return json.dumps({"ServiceAddress": url, "ServiceTimeout": 5000})


def setup():
    c = client()
    sfx = E["CLOUDAPI_SUFFIX"]
    backend = c.create_backend(m.CreateBackendRequest(
        backend_name=f"seed_backend_{sfx}", backend_type="HTTP", description="the seed's backend")).body
    assert len(backend.backend_id) == 32 and backend.request_id, backend
    bid = backend.backend_id
    test_model = c.create_backend_model(m.CreateBackendModelRequest(
        backend_id=bid, backend_type="HTTP", stage_name="TEST",
        backend_model_data=http_model("http://" + E["UPSTREAM_TEST"]), description="test")).body.backend_model_id
    c.create_backend_model(m.CreateBackendModelRequest(
        backend_id=bid, backend_type="HTTP", stage_name="RELEASE",
        backend_model_data=http_model("http://" + E["UPSTREAM_RELEASE"]), description="release"))
    info = c.describe_backend_info(m.DescribeBackendInfoRequest(backend_id=bid)).body.backend_info
    assert {x.stage_name for x in info.backend_models} == {"TEST", "RELEASE"}, info
    assert info.backend_type == "HTTP" and info.backend_name == f"seed_backend_{sfx}"
    listed = c.describe_backend_list(m.DescribeBackendListRequest(backend_name=f"seed_backend_{sfx}")).body
    assert listed.total_count == 1 and listed.backend_info_list[0].backend_id == bid
    c.modify_backend(m.ModifyBackendRequest(
        backend_id=bid, backend_name=f"seed_backend_{sfx}", backend_type="HTTP", description="renamed"))
    expect_error("OperationDenied", lambda: c.modify_backend(m.ModifyBackendRequest(
        backend_id=bid, backend_name=f"seed_backend_{sfx}", backend_type="MOCK")))

    group = c.create_api_group(m.CreateApiGroupRequest(group_name=f"seed_group_{sfx}", description="seed")).body
    gid = group.group_id
    groups = c.describe_api_groups(m.DescribeApiGroupsRequest(group_name=f"seed_group_{sfx}")).body
    assert groups.api_group_attributes.api_group_attribute[0].group_id == gid

    path = f"/seed/{sfx}/[id]"
    api = c.create_api(m.CreateApiRequest(
        group_id=gid, api_name=f"seed_api_{sfx}", visibility="PRIVATE", auth_type="APP",
        request_config=json.dumps({"RequestProtocol": "HTTP,HTTPS", "RequestHttpMethod": "GET",
                                   "RequestPath": path, "RequestMode": "MAPPING"}),
        service_config=json.dumps({"ServicePath": "/echo/[id]", "ServiceHttpMethod": "GET",
                                   "ServiceTimeout": 5000, "ContentTypeCatagory": "CLIENT"}),
        request_parameters=json.dumps([
            {"ApiParameterName": "id", "Location": "PATH", "ParameterType": "String", "Required": "REQUIRED"},
            {"ApiParameterName": "q", "Location": "QUERY", "ParameterType": "Int", "Required": "OPTIONAL",
             "DefaultValue": "7", "MaxValue": 100}]),
        service_parameters=json.dumps([
            {"ServiceParameterName": "id", "Location": "PATH", "ParameterType": "STRING", "ParameterCatalog": "REQUEST"},
            {"ServiceParameterName": "quantity", "Location": "QUERY", "ParameterType": "NUMBER", "ParameterCatalog": "REQUEST"}]),
        service_parameters_map=json.dumps([
            {"RequestParameterName": "id", "ServiceParameterName": "id"},
            {"RequestParameterName": "q", "ServiceParameterName": "quantity"}]),
        result_type="JSON", result_sample='{"ok": true}', force_nonce_check=True,
        backend_enable=True, backend_id=bid, description="the seed's API")).body
    aid = api.api_id
    assert len(aid) == 32, api
    # a field stagegate cannot honour is refused, not dropped
    expect_error("UnsupportedParameter", lambda: c.create_api(m.CreateApiRequest(
        group_id=gid, api_name=f"openid_api_{sfx}", visibility="PRIVATE", auth_type="APPOPENID",
        request_config=json.dumps({"RequestHttpMethod": "GET", "RequestPath": "/x"}),
        backend_enable=True, backend_id=bid)))
    c.modify_api(m.ModifyApiRequest(
        group_id=gid, api_id=aid, api_name=f"seed_api_{sfx}", auth_type="APP",
        request_config=json.dumps({"RequestProtocol": "HTTP", "RequestHttpMethod": "GET",
                                   "RequestPath": path, "RequestMode": "MAPPING"}),
        service_config=json.dumps({"ServicePath": "/echo/[id]", "ServiceHttpMethod": "GET", "ServiceTimeout": 5000}),
        request_parameters=json.dumps([
            {"ApiParameterName": "id", "Location": "PATH", "ParameterType": "String", "Required": "REQUIRED"},
            {"ApiParameterName": "q", "Location": "QUERY", "ParameterType": "Int", "DefaultValue": "7", "MaxValue": 100}]),
        service_parameters=json.dumps([
            {"ServiceParameterName": "id", "Location": "PATH", "ParameterType": "STRING", "ParameterCatalog": "REQUEST"},
            {"ServiceParameterName": "quantity", "Location": "QUERY", "ParameterType": "NUMBER", "ParameterCatalog": "REQUEST"}]),
        service_parameters_map=json.dumps([
            {"RequestParameterName": "id", "ServiceParameterName": "id"},
            {"RequestParameterName": "q", "ServiceParameterName": "quantity"}]),
        force_nonce_check=True, backend_enable=True, backend_id=bid, description="modified"))
    described = c.describe_api(m.DescribeApiRequest(group_id=gid, api_id=aid)).body
    assert described.description == "modified" and described.request_config.request_path == path
    assert described.backend_enable is True and described.force_nonce_check is True

    for stage in ("TEST", "RELEASE"):
        c.deploy_api(m.DeployApiRequest(group_id=gid, api_id=aid, stage_name=stage, description=f"to {stage}"))
    # the refused deploy: the backend has no model for PRE
    refused = expect_error("NotFoundBackendModel", lambda: c.deploy_api(m.DeployApiRequest(
        group_id=gid, api_id=aid, stage_name="PRE", description="no model")))
    deployed = c.describe_deployed_apis(m.DescribeDeployedApisRequest(group_id=gid)).body
    assert sorted(d.stage_name for d in deployed.deployed_apis.deployed_api_item) == ["RELEASE", "TEST"]
    hist = c.describe_history_apis(m.DescribeHistoryApisRequest(group_id=gid, api_id=aid, stage_name="RELEASE")).body
    assert hist.api_his_items.api_his_item[0].status == "ONLINE"

    app = c.create_app(m.CreateAppRequest(app_name=f"seed_app_{sfx}", description="seed")).body
    assert isinstance(app.app_id, int), app
    sec = c.describe_app_security(m.DescribeAppSecurityRequest(app_id=app.app_id)).body
    c.modify_app(m.ModifyAppRequest(app_id=app.app_id, app_name=f"seed_app_{sfx}", description="modified"))
    apps = c.describe_apps(m.DescribeAppsRequest(app_id=app.app_id)).body
    assert apps.apps.app_item[0].description == "modified"
    for stage in ("TEST", "RELEASE"):
        c.set_apps_authorities(m.SetAppsAuthoritiesRequest(
            group_id=gid, api_id=aid, app_ids=str(app.app_id), stage_name=stage, description="grant"))
    granted = c.describe_authorized_apps(m.DescribeAuthorizedAppsRequest(group_id=gid, api_id=aid)).body
    assert sorted(a.stage_name for a in granted.authorized_apps.authorized_app) == ["RELEASE", "TEST"]
    by_app = c.describe_authorized_apis(m.DescribeAuthorizedApisRequest(app_id=app.app_id)).body
    assert {a.api_id for a in by_app.authorized_apis.authorized_api} == {aid}
    # the modify cascade: the TEST model now points at another upstream; the published API follows
    c.modify_backend_model(m.ModifyBackendModelRequest(
        backend_id=bid, backend_model_id=test_model, backend_type="HTTP", stage_name="TEST",
        backend_model_data=http_model("http://" + E["UPSTREAM_TEST2"])))
    by_backend = c.describe_apis_by_backend(m.DescribeApisByBackendRequest(backend_id=bid, stage_name="TEST")).body
    assert by_backend.api_info_list.api_info[0].api_id == aid
    return {"backend_id": bid, "test_model": test_model, "group_id": gid, "api_id": aid,
            "app_id": app.app_id, "app_key": sec.app_key, "app_secret": sec.app_secret,
            "path_prefix": f"/seed/{sfx}", "refused_deploy_exception": refused}


def cascade(state):
    c = client()
    gid, aid, bid = state["group_id"], state["api_id"], state["backend_id"]
    # the delete cascade: deleting the TEST model unpublishes the API from TEST
    c.delete_backend_model(m.DeleteBackendModelRequest(
        backend_id=bid, backend_model_id=state["test_model"], stage_name="TEST"))
    deployed = c.describe_deployed_apis(m.DescribeDeployedApisRequest(group_id=gid)).body
    assert [d.stage_name for d in deployed.deployed_apis.deployed_api_item] == ["RELEASE"]
    expect_error("NotFoundBackendModel", lambda: c.deploy_api(m.DeployApiRequest(
        group_id=gid, api_id=aid, stage_name="TEST", description="model gone")))
    return {"ok": True}


def teardown(state):
    c = client()
    gid, aid, bid, app = state["group_id"], state["api_id"], state["backend_id"], state["app_id"]
    c.remove_apps_authorities(m.RemoveAppsAuthoritiesRequest(
        group_id=gid, api_id=aid, app_ids=str(app), stage_name="RELEASE"))
    c.abolish_api(m.AbolishApiRequest(group_id=gid, api_id=aid, stage_name="RELEASE"))
    expect_error("DependencyViolation", lambda: c.delete_backend(m.DeleteBackendRequest(backend_id=bid)))
    c.delete_api(m.DeleteApiRequest(group_id=gid, api_id=aid))
    expect_error("NotFoundApi", lambda: c.describe_api(m.DescribeApiRequest(group_id=gid, api_id=aid)))
    c.delete_app(m.DeleteAppRequest(app_id=app))
    c.delete_api_group(m.DeleteApiGroupRequest(group_id=gid))
    c.delete_backend(m.DeleteBackendRequest(backend_id=bid))
    return {"ok": True}


def errors(_state):
    out = {}
    req = m.DescribeApiGroupsRequest()
    out["wrong_secret"] = expect_error("SignatureDoesNotMatch",
                                       lambda: client(secret="not-the-secret-0123456789").describe_api_groups(req))
    out["unknown_key"] = expect_error("InvalidAccessKeyId.NotFound",
                                      lambda: client(key="LTAIunknownKey000000").describe_api_groups(req))
    real_ts, real_nonce = Utils.get_timestamp, Utils.get_nonce
    try:
        stale = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 16 * 60))
        Utils.get_timestamp = staticmethod(lambda: stale)
        out["stale_timestamp"] = expect_error("InvalidTimeStamp.Expired", lambda: client().describe_api_groups(req))
        Utils.get_timestamp = real_ts
        nonce = "fixed-nonce-" + E["CLOUDAPI_SUFFIX"]
        Utils.get_nonce = staticmethod(lambda: nonce)
        client().describe_api_groups(req)
        out["replayed_nonce"] = expect_error("SignatureNonceUsed", lambda: client().describe_api_groups(req))
    finally:
        Utils.get_timestamp, Utils.get_nonce = real_ts, real_nonce
    return out


if __name__ == "__main__":
    phase = sys.argv[1]
    state = json.loads(E.get("CLOUDAPI_STATE") or "{}")
    result = {"setup": setup, "cascade": cascade, "teardown": teardown, "errors": errors}[phase]
    print(json.dumps(result() if phase == "setup" else result(state)))
