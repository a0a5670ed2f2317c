import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MacroStore } from '../../src/session/macros.js';

describe('macro store', () => {
  it('finds names with and without braces, most recent stage first', () => {
    const m = new MacroStore();
    m.set('C', [['j', 'mx.test'], ['{client_addr}', '203.0.113.9']]);
    m.set('M', [['{auth_authen}', 'alice'], ['i', 'OLD']]);
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
  it('a new CONNECT clears everything; unknown stages and empty lists are kept', () => {
    const m = new MacroStore();
    m.set('Z', [['x', '1']]);
    m.set('H', []);
    assert.equal(m.get('x'), '1');
    m.set('C', [['j', 'mx']]);
    assert.equal(m.get('x'), '1', 'unknown stage letters are not part of the order');
    m.clear();
    assert.equal(m.get('j'), undefined);
  });
});
