// Reads a JWT's claims without verifying it (the server verifies): the client only needs `sub`
// (whose messages are its own) and `exp` (when to refresh).

export interface Claims {
  sub?: string;
  exp?: number;
}

export function tokenClaims(token: string): Claims {
  const part = token.split('.')[1];
  if (!part) return {};
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    const claims = JSON.parse(json) as { sub?: unknown; exp?: unknown };
    const out: Claims = {};
    if (typeof claims.sub === 'string') out.sub = claims.sub;
    if (typeof claims.exp === 'number') out.exp = claims.exp;
    return out;
  } catch {
    return {};
  }
}
