// A real OpenID provider for the identity tests: panva's oidc-provider, configured from a
// JSON file (argv[2]) the tests write: issuer, port, signing keys, clients, users and the
// resource servers (API audiences) whose access tokens are JWTs. Prints "ready" when listening.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = config.users; // id -> { email, email_verified, name, groups }

// email_verified is true unless the user says otherwise (false, or null: the claim is left out).
function claimsOf(id) {
  const user = users[id] || {};
  const verified = 'email_verified' in user ? user.email_verified : true;
  const claims = { sub: id, email: user.email, name: user.name, groups: user.groups || [] };
  if (verified !== null) claims.email_verified = verified;
  return claims;
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  cookies: { keys: ['kneo-test-cookie-key-0123456789'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  async findAccount(ctx, id) {
    if (!users[id]) return undefined;
    return { accountId: id, async claims() { return claimsOf(id); } };
  },
  pkce: { required: () => true },
  conformIdTokenClaims: false, // the ID token carries email and groups, as Dex's does
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => config.defaultResource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => {
        const server = config.resources[indicator];
        if (!server) throw new Error(`unknown resource ${indicator}`);
        return { scope: 'openid email profile groups', audience: server.audience, accessTokenTTL: server.ttl || 3600, accessTokenFormat: 'jwt' };
      },
    },
  },
  async extraTokenClaims(ctx, token) {
    if (token.accountId) {
      const { email, email_verified, groups } = claimsOf(token.accountId);
      return email_verified === undefined ? { email, groups } : { email, email_verified, groups };
    }
    const groups = (config.clientGroups || {})[token.clientId];
    return groups ? { groups } : undefined;
  },
  ttl: { AccessToken: 3600, IdToken: 3600, DeviceCode: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;
const server = provider.listen(config.port, '127.0.0.1', () => console.log('ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
