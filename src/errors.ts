/**
 * The one registry of Tandem's error codes. Each code is defined once with its HTTP status
 * and a generic message; codes are never reused for another meaning. `docs/errors.md` is
 * kept in sync by `errors.test.ts`.
 */
export const ERRORS = {
  invalid_json: { status: 400, message: 'The body is not valid JSON.' },
  invalid_encoding: { status: 400, message: 'The body is not valid UTF-8 or its Content-Encoding is not supported.' },
  body_too_large: { status: 413, message: 'The body is larger than the server accepts.' },
  event_too_large: { status: 400, message: 'An event is larger than 32 KB.' },
  batch_too_large: { status: 400, message: 'The batch is larger than 500 KB.' },
  batch_too_many_events: { status: 400, message: 'The batch has more than 2500 events.' },
  invalid_batch: { status: 400, message: 'The batch field must be a non-empty array of events.' },
  nesting_too_deep: { status: 400, message: 'The body is nested too deeply.' },
  invalid_event: { status: 400, message: 'The event must be a JSON object.' },
  invalid_type: { status: 400, message: 'The event type is missing or unknown.' },
  missing_identity: { status: 400, message: 'The event needs a userId or an anonymousId.' },
  invalid_identifier: { status: 400, message: 'An identifier must be a string or a number of at most 1024 characters.' },
  missing_event_name: { status: 400, message: 'A track event needs a non-empty event name.' },
  missing_group_id: { status: 400, message: 'A group call needs a groupId.' },
  missing_previous_id: { status: 400, message: 'An alias call needs a previousId and a userId.' },
  invalid_message_id: { status: 400, message: 'messageId must be a string of at most 100 characters.' },
  invalid_field: { status: 400, message: 'A field has the wrong type.' },
  missing_write_key: { status: 401, message: 'No write key was given.' },
  invalid_write_key: { status: 401, message: 'The write key is unknown or revoked.' },
  rate_limited: { status: 429, message: 'Too many requests; retry after the time given.' },
  unauthorized: { status: 401, message: 'A valid bearer token is required.' },
  forbidden: { status: 403, message: 'The token does not allow this.' },
  cross_origin_forbidden: { status: 403, message: 'Cross-origin requests are not allowed on this route.' },
  not_found: { status: 404, message: 'Not found.' },
  invalid_request: { status: 400, message: 'The request is not valid.' },
  invalid_credentials: { status: 401, message: 'The email or the password is not right.' },
  stale_change: { status: 409, message: 'What the change request was made on has changed since; propose it again.' },
  invalid_plan: { status: 400, message: 'The tracking plan is not valid at the path named.' },
  too_few_customers: { status: 422, message: 'Too few customers or repeat buyers for the models to mean anything.' },
  no_purchases: { status: 422, message: 'No customer has a purchase on or before the calibration end: there is nothing to fit.' },
  invalid_definition: { status: 400, message: 'The audience definition is not valid at the node named.' },
  invalid_cursor: { status: 400, message: 'The cursor is not valid.' },
  invalid_destination: { status: 400, message: 'The destination URL is not one webhooks may be sent to.' },
  already_exists: { status: 409, message: 'Something with that name or key exists already.' },
  approval_required: { status: 403, message: 'This change needs approval; propose it as a change request.' },
  request_timeout: { status: 408, message: 'The request took too long to arrive.' },
  url_too_long: { status: 414, message: 'A part of the URL is longer than the server accepts.' },
  unavailable: { status: 503, message: 'The store is unavailable; nothing was acknowledged.' },
  internal_error: { status: 500, message: 'Internal error; nothing was acknowledged.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The one error class: a code from the registry, plus an optional detail safe to show. */
export class TandemError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause: unknown }) {
    super(detail ? `${ERRORS[code].message} ${detail}` : ERRORS[code].message, options);
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = detail;
  }
}
