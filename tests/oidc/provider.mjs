// A real OpenID Connect provider on loopback for the portal's sign-in tests: panva's oidc-provider
// with its development login and consent pages (any password is taken; the login picks the account).
//
//   PORT=8123 CLIENT_ID=dcops-portal CLIENT_SECRET=... REDIRECT_URI=http://127.0.0.1:8124/signin/oidc/callback \
//     [ACCOUNTS_FILE=accounts.json] [CLAIMS_ONLY_IN_USERINFO=1] node provider.mjs
//
// Prints "ready <issuer>" once it listens on 127.0.0.1:PORT. The accounts carry the claims a
// Keycloak 26 realm gives dcops: preferred_username, email, organization (the organisations'
// aliases) and dcops_roles. ACCOUNTS_FILE, when set, is read again at every sign-in, so a test
// can change a person's roles between two sign-ins. By default the ID token carries the
// claims, as Keycloak's mappers do; CLAIMS_ONLY_IN_USERINFO=1 keeps them to the userinfo
// endpoint, as the OpenID Connect specification has it for the code flow.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const ACCOUNTS = {
  ravi: { preferred_username: 'ravi', name: 'Ravi Phommachanh', email: 'ravi@mtc.example.la',
    organization: ['mtc'], dcops_roles: ['requester', 'viewer'] },
  olga: { preferred_username: 'Olga', name: 'Olga Sayavong', email: 'olga@dc.example.la',
    organization: [], dcops_roles: ['operator'] },
  nora: { preferred_username: 'nora', name: 'Nora Keo', email: 'nora@moh.example.la',
    organization: ['moh'], dcops_roles: [] },
};

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is required`);
    process.exit(2);
  }
  return value;
}

const port = Number(need('PORT'));
const issuer = `http://127.0.0.1:${port}`;

function accounts() {
  const file = process.env.ACCOUNTS_FILE;
  return file ? JSON.parse(readFileSync(file, 'utf8')) : ACCOUNTS;
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig',
  alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: need('CLIENT_ID'),
    client_secret: need('CLIENT_SECRET'),
    redirect_uris: [need('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'profile', 'email', 'organization'],
  // dcops_roles rides with the organization scope, as a Keycloak mapper on that client scope would.
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    organization: ['organization', 'dcops_roles'],
  },
  conformIdTokenClaims: process.env.CLAIMS_ONLY_IN_USERINFO === '1',
  pkce: { required: () => true }, // a relying party that sends no S256 challenge is refused
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const person = accounts()[id];
    if (!person) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return { sub: id, email_verified: true, ...person };
      },
    };
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
