// A dvhost plugin in JavaScript, built with `jco componentize` against
// wit/plugin.wit.
//
// Two actions:
// - `hello` greets a name: {"name": "Ada"} -> {"greeting": "Hello, Ada!"}.
// - `count-accounts` asks the host to count the `account` rows (a query with
//   `count` set) and answers {"count": n}.
//
// The module only sees the host through the imported interfaces: it names a
// table and columns, never a URL or a credential.

import { write } from 'dvhost:plugin/log@0.1.0';
import { query } from 'dvhost:plugin/records@0.1.0';

const HELLO_INPUT = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1 } },
  required: ['name'],
  additionalProperties: false,
};
const HELLO_OUTPUT = {
  type: 'object',
  properties: { greeting: { type: 'string' } },
  required: ['greeting'],
};
const COUNT_INPUT = { type: 'object', additionalProperties: false };
const COUNT_OUTPUT = {
  type: 'object',
  properties: { count: { type: 'integer', minimum: 0 } },
  required: ['count'],
};

// A thrown `{ tag, val }` becomes the `err` case of `invoke`'s result.
function invalidInput(message) {
  return { tag: 'invalid-input', val: message };
}

function failed(message) {
  return { tag: 'failed', val: message };
}

function parseObject(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalidInput(`input is not JSON: ${error.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalidInput('input must be a JSON object');
  }
  return value;
}

function hello(input) {
  const name = input.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw invalidInput('`name` must be a non-empty string');
  }
  write('info', `greeting ${name}`);
  return { greeting: `Hello, ${name}!` };
}

function countAccounts(_input) {
  // One row per page is enough: Dataverse counts every matching row whatever
  // the page size, so only the count travels.
  let page;
  try {
    page = query('account', {
      select: ['accountid'],
      filter: [],
      orderBy: [],
      top: undefined,
      pageSize: 1,
      count: true,
      expand: [],
    });
  } catch (error) {
    // An imported function's `err` arrives as an exception whose `payload`
    // is the WIT `error` record.
    const message = error?.payload?.message ?? String(error);
    throw failed(`records.query failed: ${message}`);
  }
  try {
    const count = page.count();
    if (count === undefined) {
      throw failed('the host returned no count');
    }
    write('info', `counted ${count} accounts`);
    // `u64` arrives as a BigInt; JSON has no BigInt, and a count of at most
    // 5000 rows fits a Number exactly.
    return { count: Number(count) };
  } finally {
    page[Symbol.dispose]();
  }
}

const ACTIONS = {
  hello: ['Greets a name.', HELLO_INPUT, HELLO_OUTPUT, hello],
  'count-accounts': [
    'Counts the rows of the account table.',
    COUNT_INPUT,
    COUNT_OUTPUT,
    countAccounts,
  ],
};

/** The exported `actions` interface. */
export const actions = {
  describe() {
    return Object.entries(ACTIONS).map(([name, [description, input, output]]) => ({
      name,
      description,
      inputSchema: JSON.stringify(input),
      outputSchema: JSON.stringify(output),
    }));
  },

  invoke(name, input) {
    const action = Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
    if (action === undefined) {
      throw { tag: 'unknown-action', val: name };
    }
    return JSON.stringify(action[3](parseObject(input)));
  },
};
