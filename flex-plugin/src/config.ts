/**
 * Baton's URL, from the plugin's `.env` (Flex plugin convention: variables named FLEX_APP_* are
 * inlined into the bundle at build time). Null when it is not set: the plugin then leaves
 * messaging transfers to Flex.
 */
export function batonUrl(): string | null {
  const value = process.env.FLEX_APP_BATON_URL;
  return value && value.trim() ? value.trim().replace(/\/+$/, '') : null;
}
