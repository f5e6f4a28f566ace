// A real OAuth 2.0 / OpenID Connect authorization server (oidc-provider) for tessel-proxy's
// tests. It is configured the way a self-hosted issuer for tessel-proxy would be: a public
// client (no secret) using the device flow or the authorization code flow with PKCE, rotating
// refresh tokens, revocation, and JWT access tokens for the proxy's audience through resource
// indicators.
//
// Environment:
//   PORT                  port on 127.0.0.1 (required)
//   CLIENT_ID             the public client (default tessel-proxy)
//   AUDIENCE              default resource / access token audience (default urn:tessel-proxy)
//   ACCESS_TOKEN_TTL      seconds (default 3600)
//   REFRESH_TOKEN_TTL     seconds (default 86400)
//   DEVICE_INTERVAL       seconds between device-flow polls the client is told (default 1)
//   FORCE_SLOW_DOWN       "1": answer the first pending device-flow poll with slow_down
//   NBF_OFFSET            seconds: add nbf = now + NBF_OFFSET to access tokens
//   KEYS_FILE             JSON {keys: [private JWKs]}; created with a fresh key when missing
//
// Prints "listening <issuer>" on stdout once it accepts connections. GET /test/stats returns
// device-flow poll counters; accounts exist for any login name and any password.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const env = (name, fallback) => process.env[name] || fallback;
const port = Number(env('PORT', '0'));
if (!port) {
  console.error('PORT is required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const clientId = env('CLIENT_ID', 'tessel-proxy');
const audience = env('AUDIENCE', 'urn:tessel-proxy');
const accessTokenTTL = Number(env('ACCESS_TOKEN_TTL', '3600'));
const refreshTokenTTL = Number(env('REFRESH_TOKEN_TTL', '86400'));
const deviceInterval = Number(env('DEVICE_INTERVAL', '1'));
const forceSlowDown = env('FORCE_SLOW_DOWN', '') === '1';
const nbfOffset = Number(env('NBF_OFFSET', '0'));

function signingKeys() {
  const file = process.env.KEYS_FILE;
  if (file && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };
  const jwks = { keys: [jwk] };
  if (file) writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

const provider = new Provider(issuer, {
  jwks: signingKeys(),
  clients: [
    {
      client_id: clientId,
      application_type: 'native', // loopback redirect on any port (RFC 8252)
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      // A machine client, so that server-side tests can mint tokens without a user.
      client_id: 'test-service',
      client_secret: 'test-service-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  findAccount: (_ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, email: `${sub}@example.test`, name: sub }),
  }),
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'proxy'],
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf || audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (!indicator.startsWith('urn:')) throw new errors.InvalidTarget();
        return {
          scope: 'proxy',
          audience: indicator,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: () => (nbfOffset ? { nbf: Math.floor(Date.now() / 1000) + nbfOffset } : undefined),
  issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    RefreshToken: refreshTokenTTL,
    DeviceCode: 600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: refreshTokenTTL,
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// oidc-provider neither advertises a polling interval nor sends slow_down; real issuers do
// both, and the client must honour them.
const stats = { polls: 0, slowDowns: 0 };
const lastPoll = new Map(); // device_code -> { at, interval }
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/stats') {
    ctx.body = stats;
    return;
  }
  const isDevicePoll = ctx.method === 'POST' && ctx.path === '/token';
  if (!isDevicePoll) {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200) {
      ctx.body = { ...ctx.body, interval: deviceInterval };
    }
    return;
  }
  await next();
  if (ctx.body?.error !== 'authorization_pending') return;
  stats.polls += 1;
  const code = ctx.oidc?.params?.device_code;
  const now = Date.now();
  const previous = lastPoll.get(code);
  const poll = { at: now, interval: previous?.interval ?? deviceInterval };
  lastPoll.set(code, poll);
  const tooSoon = previous !== undefined && now - previous.at < previous.interval * 1000 - 100;
  if (!tooSoon && !(forceSlowDown && stats.slowDowns === 0)) return;
  // RFC 8628 §3.5: after slow_down the client adds 5 seconds to its interval for good.
  poll.interval += 5;
  stats.slowDowns += 1;
  ctx.body = { error: 'slow_down', error_description: 'poll less often' };
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
