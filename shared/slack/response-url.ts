/** response_url must be under the configured prefix (https://hooks.slack.com/ in production): never an open redirect. */
export const responseUrlAllowed = (prefix: string, url: string): boolean => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return parsed.username === '' && parsed.password === '' && parsed.href.startsWith(prefix);
};
