// Turns a decoded text part into the text patterns are matched against: HTML reduced to what a
// reader sees (tags, comments, scripts and styles removed, entities decoded) and every run of
// white space made a single space, so a phrase still matches when a mail client wrapped it.
// The HTML scanner is shared with the disclaimer (src/mime/html-text.ts); the entity names differ:
// here dashes become "-", so a phrase matches however a client typed its dash.
import { BASIC_ENTITIES, htmlToText as visibleText, type EntityTable } from '../../mime/html-text.js';

const NAMED_ENTITIES: EntityTable = new Map(
  Object.entries({
    ...BASIC_ENTITIES,
    ndash: '-',
    mdash: '-',
    shy: '',
    zwnj: '',
    zwj: '',
  }),
);

export function htmlToText(html: string): string {
  return visibleText(html, NAMED_ENTITIES);
}

/** Invisible characters that would split a phrase without showing: zero-width ones, soft hyphen, BOM. */
const INVISIBLE = /[\u00ad\u200b-\u200d\u2060\ufeff]+/g;

/**
 * Runs of white space that are not already a single space: replacing only these gives what
 * replacing every run does, without rewriting each single space between words.
 */
const SPACE_RUNS_TO_COLLAPSE = /\s{2,}|[^\S ]/g;

/** Every run of white space (line breaks, tabs, NBSP, Unicode spaces) becomes one space. */
export function normalizeSpace(text: string): string {
  return text.replace(INVISIBLE, '').replace(SPACE_RUNS_TO_COLLAPSE, ' ').trim();
}
