// A real OpenID provider for PicHub's single sign-on tests: the certified `oidc-provider`
// package on 127.0.0.1 (a free port), with one confidential client and the accounts given
// in OIDC_ACCOUNTS (JSON: {"<sub>": {email, email_verified, preferred_username, groups}}).
//
// There is no login form: /interaction/<uid> signs in the account named by the
// authorization request's `login_hint` and grants every requested scope, so a test drives
// the whole flow with plain HTTP requests. An ES module (.mjs: the other scripts here
// are CommonJS). Prints {"issuer": ...} once it listens.
import http from 'node:http';
import Provider from 'oidc-provider';

const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const redirectUri = process.env.OIDC_REDIRECT_URI;
const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.OIDC_CLIENT_ID || 'pichub',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'pichub-test-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['pichub-test-cookie-key'] },
    findAccount: async (ctx, id) => (accounts[id] ? {
      accountId: id,
      claims: async () => ({ sub: id, ...accounts[id] }),
    } : undefined),
  });
  const callback = provider.callback();

  async function interact(req, res) {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params } = details;
    if (prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: params.login_hint } },
        { mergeWithLastSubmission: false });
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } },
      { mergeWithLastSubmission: true });
  }

  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interact(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    } else {
      callback(req, res);
    }
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
