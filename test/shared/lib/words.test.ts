import { describe, expect, it } from 'vitest';
import { counted, pluralOf, withArticle } from '../../../shared/lib/words.ts';

describe('Function: pluralOf', () => {
  it.each([
    ['identity', 'identities'],
    ['key', 'keys'],
    ['change', 'changes'],
    ['address', 'addresses'],
    ['principal', 'principals'],
  ])('%s → %s', (noun, plural) => {
    expect(pluralOf(noun)).toBe(plural);
  });
});

describe('Function: counted', () => {
  it('takes the singular for one and the plural otherwise', () => {
    expect(counted(1, 'change')).toBe('1 change');
    expect(counted(0, 'change')).toBe('0 changes');
    expect(counted(3, 'identity')).toBe('3 identities');
    expect(counted(2, 're-issue refused', 're-issues refused')).toBe('2 re-issues refused');
  });
});

describe('Function: withArticle', () => {
  it('puts an before a vowel and a before a consonant', () => {
    expect(['agent', 'admin', 'orchestrator', 'identity', 'verifier'].map(withArticle)).toEqual(['an agent', 'an admin', 'an orchestrator', 'an identity', 'a verifier']);
  });
});
