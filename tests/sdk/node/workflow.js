// The seed's workflow through the official CloudAPI Node SDK (@alicloud/cloudapi20160714),
// unmodified, against stagegate. Run by tests/cloudapi_sdk.rs as `node workflow.js PHASE` with
// the same environment as tests/sdk/python/workflow.py; prints one JSON line last.
'use strict';
const Cloudapi = require('@alicloud/cloudapi20160714');
const { $OpenApiUtil } = require('@alicloud/openapi-core');
const Utils = require('@alicloud/openapi-core/dist/utils').default;

const E = process.env;
const Client = Cloudapi.default;

function client(secret, key) {
  const cfg = new $OpenApiUtil.Config({
    accessKeyId: key || E.CLOUDAPI_AK,
    accessKeySecret: secret || E.CLOUDAPI_SK,
    endpoint: E.CLOUDAPI_ENDPOINT,
    protocol: 'http',
    regionId: 'cn-hangzhou',
  });
  if (E.CLOUDAPI_SIGNATURE === 'v2') cfg.signatureAlgorithm = 'v2';
  return new Client(cfg);
}

function assert(cond, what) {
  if (!cond) throw new Error('assertion failed: ' + what);
}

async function expectError(code, fn) {
  try {
    await fn();
  } catch (e) {
    assert(e.code === code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e.name || 'Error';
  }
  throw new Error(`expected ${code}, the call succeeded`);
}

const httpModel = (url) => JSON.stringify({ ServiceAddress: url, ServiceTimeout: 5000 });

async function setup() {
  const c = client();
  const sfx = E.CLOUDAPI_SUFFIX;
  const bid = (await c.createBackend(new Cloudapi.CreateBackendRequest({
    backendName: `node_backend_${sfx}`, backendType: 'HTTP', description: 'node' }))).body.backendId;
  assert(bid.length === 32, 'backend id shape');
  const testModel = (await c.createBackendModel(new Cloudapi.CreateBackendModelRequest({
    backendId: bid, backendType: 'HTTP', stageName: 'TEST',
    backendModelData: httpModel('http://' + E.UPSTREAM_TEST) }))).body.backendModelId;
  await c.createBackendModel(new Cloudapi.CreateBackendModelRequest({
    backendId: bid, backendType: 'HTTP', stageName: 'RELEASE',
    backendModelData: httpModel('http://' + E.UPSTREAM_RELEASE) }));
  const info = (await c.describeBackendInfo(new Cloudapi.DescribeBackendInfoRequest({ backendId: bid }))).body.backendInfo;
  assert(info.backendModels.length === 2, 'two models');
  const gid = (await c.createApiGroup(new Cloudapi.CreateApiGroupRequest({ groupName: `node_group_${sfx}` }))).body.groupId;
  const path = `/seed/${sfx}/[id]`;
  const aid = (await c.createApi(new Cloudapi.CreateApiRequest({
    groupId: gid, apiName: `node_api_${sfx}`, visibility: 'PRIVATE', authType: 'APP',
    requestConfig: JSON.stringify({ RequestProtocol: 'HTTP', RequestHttpMethod: 'GET', RequestPath: path, RequestMode: 'MAPPING' }),
    serviceConfig: JSON.stringify({ ServicePath: '/echo/[id]', ServiceHttpMethod: 'GET', ServiceTimeout: 5000 }),
    requestParameters: JSON.stringify([
      { ApiParameterName: 'id', Location: 'PATH', ParameterType: 'String', Required: 'REQUIRED' },
      { ApiParameterName: 'q', Location: 'QUERY', ParameterType: 'Int', DefaultValue: '7', MaxValue: 100 }]),
    serviceParameters: JSON.stringify([
      { ServiceParameterName: 'id', Location: 'PATH', ParameterType: 'STRING', ParameterCatalog: 'REQUEST' },
      { ServiceParameterName: 'quantity', Location: 'QUERY', ParameterType: 'NUMBER', ParameterCatalog: 'REQUEST' }]),
    serviceParametersMap: JSON.stringify([
      { RequestParameterName: 'id', ServiceParameterName: 'id' },
      { RequestParameterName: 'q', ServiceParameterName: 'quantity' }]),
    resultSample: '{"ok": true}', forceNonceCheck: true, backendEnable: true, backendId: bid }))).body.apiId;
  for (const stage of ['TEST', 'RELEASE']) {
    await c.deployApi(new Cloudapi.DeployApiRequest({ groupId: gid, apiId: aid, stageName: stage, description: 'node' }));
  }
  const refused = await expectError('NotFoundBackendModel', () => c.deployApi(new Cloudapi.DeployApiRequest({
    groupId: gid, apiId: aid, stageName: 'PRE', description: 'no model' })));
  const app = (await c.createApp(new Cloudapi.CreateAppRequest({ appName: `node_app_${sfx}` }))).body;
  assert(typeof app.appId === 'number', 'AppId is a number');
  const sec = (await c.describeAppSecurity(new Cloudapi.DescribeAppSecurityRequest({ appId: app.appId }))).body;
  for (const stage of ['TEST', 'RELEASE']) {
    await c.setAppsAuthorities(new Cloudapi.SetAppsAuthoritiesRequest({
      groupId: gid, apiId: aid, appIds: String(app.appId), stageName: stage }));
  }
  const granted = (await c.describeAuthorizedApps(new Cloudapi.DescribeAuthorizedAppsRequest({ groupId: gid, apiId: aid }))).body;
  assert(granted.authorizedApps.authorizedApp.length === 2, 'two grants');
  await c.modifyBackendModel(new Cloudapi.ModifyBackendModelRequest({
    backendId: bid, backendModelId: testModel, backendType: 'HTTP', stageName: 'TEST',
    backendModelData: httpModel('http://' + E.UPSTREAM_TEST2) }));
  return { backend_id: bid, test_model: testModel, group_id: gid, api_id: aid, app_id: app.appId,
    app_key: sec.appKey, app_secret: sec.appSecret, path_prefix: `/seed/${sfx}`, refused_deploy_exception: refused };
}

async function cascade(s) {
  const c = client();
  await c.deleteBackendModel(new Cloudapi.DeleteBackendModelRequest({
    backendId: s.backend_id, backendModelId: s.test_model, stageName: 'TEST' }));
  const deployed = (await c.describeDeployedApis(new Cloudapi.DescribeDeployedApisRequest({ groupId: s.group_id }))).body;
  const stages = deployed.deployedApis.deployedApiItem.map((d) => d.stageName);
  assert(JSON.stringify(stages) === '["RELEASE"]', 'only RELEASE stays: ' + stages);
  return { ok: true };
}

async function teardown(s) {
  const c = client();
  await c.removeAppsAuthorities(new Cloudapi.RemoveAppsAuthoritiesRequest({
    groupId: s.group_id, apiId: s.api_id, appIds: String(s.app_id), stageName: 'RELEASE' }));
  await c.abolishApi(new Cloudapi.AbolishApiRequest({ groupId: s.group_id, apiId: s.api_id, stageName: 'RELEASE' }));
  await c.deleteApi(new Cloudapi.DeleteApiRequest({ groupId: s.group_id, apiId: s.api_id }));
  await c.deleteApp(new Cloudapi.DeleteAppRequest({ appId: s.app_id }));
  await c.deleteApiGroup(new Cloudapi.DeleteApiGroupRequest({ groupId: s.group_id }));
  await c.deleteBackend(new Cloudapi.DeleteBackendRequest({ backendId: s.backend_id }));
  return { ok: true };
}

async function errors() {
  const out = {};
  const req = new Cloudapi.DescribeApiGroupsRequest({});
  out.wrong_secret = await expectError('SignatureDoesNotMatch', () => client('not-the-secret-0123456789').describeApiGroups(req));
  out.unknown_key = await expectError('InvalidAccessKeyId.NotFound', () => client(null, 'LTAIunknownKey000000').describeApiGroups(req));
  const realTs = Utils.getTimestamp;
  const realNonce = Utils.getNonce;
  try {
    const stale = new Date(Date.now() - 16 * 60 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    Utils.getTimestamp = () => stale;
    out.stale_timestamp = await expectError('InvalidTimeStamp.Expired', () => client().describeApiGroups(req));
    Utils.getTimestamp = realTs;
    const nonce = 'fixed-nonce-' + E.CLOUDAPI_SUFFIX;
    Utils.getNonce = () => nonce;
    await client().describeApiGroups(req);
    out.replayed_nonce = await expectError('SignatureNonceUsed', () => client().describeApiGroups(req));
  } finally {
    Utils.getTimestamp = realTs;
    Utils.getNonce = realNonce;
  }
  return out;
}

const phases = { setup, cascade, teardown, errors };
const state = JSON.parse(E.CLOUDAPI_STATE || '{}');
phases[process.argv[2]](state)
  .then((r) => console.log(JSON.stringify(r)))
  .catch((e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  });
