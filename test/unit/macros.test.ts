import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MacroStore } from '../../src/session/macros.js';

describe('macro store', () => {
  it('finds names with and without braces, most recent stage first', () => {
    const m = new MacroStore();
    m.set('C', [
      ['j', 'mx.test'],
      ['{client_addr}', '203.0.113.9'],
    ]);
    m.set('M', [
      ['{auth_authen}', 'alice'],
      ['i', 'OLD'],
    ]);
    m.set('T', [['i', 'QID1']]);
    assert.equal(m.get('j'), 'mx.test');
    assert.equal(m.get('{j}'), 'mx.test');
    assert.equal(m.get('client_addr'), '203.0.113.9');
    assert.equal(m.get('i'), 'QID1', 'DATA stage is newer than MAIL');
  });
  it('a new MAIL clears MAIL and later stages, keeps connection stages', () => {
    const m = new MacroStore();
    m.set('C', [['j', 'mx']]);
    m.set('M', [['{auth_authen}', 'alice']]);
    m.set('E', [['i', 'QID1']]);
    m.set('M', [['{mail_addr}', 'b@x']]);
    assert.equal(m.get('i'), undefined);
    assert.equal(m.get('auth_authen'), undefined);
    assert.equal(m.get('j'), 'mx');
  });
  it('a new CONNECT clears everything; unknown stages are dropped, empty lists kept', () => {
    const m = new MacroStore();
    assert.equal(m.set('Z', [['x', '1']]), false);
    assert.equal(m.set('H', []), true);
    assert.equal(m.get('x'), undefined, 'libmilter drops stage letters it does not know; so do we (issue 16)');
    m.set('C', [['j', 'mx']]);
    assert.equal(m.get('j'), 'mx');
    m.clear();
    assert.equal(m.get('j'), undefined);
  });
});
