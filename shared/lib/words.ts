/**
 * Counted nouns and articles for messages people read ("1 change", "2 identities", "an
 * agent"), so no message says "1 changes", "identitys" or "a agent". The rules cover the
 * lower-case English nouns this project prints; a noun they get wrong passes its own plural.
 */

/** The plural of a noun: "identity" → "identities", "key" → "keys", "address" → "addresses". */
export function pluralOf(noun: string): string {
  if (/[^aeiou]y$/.test(noun)) return `${noun.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(noun)) return `${noun}es`;
  return `${noun}s`;
}

/** `count` and the noun in the number it takes: "1 change", "0 changes", "3 identities". */
export function counted(count: number, noun: string, plural = pluralOf(noun)): string {
  return `${count} ${count === 1 ? noun : plural}`;
}

/** The noun after its indefinite article, by its first letter: "an agent", "a verifier". */
export function withArticle(noun: string): string {
  return `${/^[aeiou]/i.test(noun) ? 'an' : 'a'} ${noun}`;
}
