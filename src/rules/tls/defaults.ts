// The TLS rule's defaults, shared by its handlers and its MTA and audit parts.

export const DEFAULT_MIN_VERSION = 'TLSv1.2';
