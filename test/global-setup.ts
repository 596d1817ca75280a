/**
 * Starts DynamoDB Local once for the whole run (the JVM takes seconds to start; two cores
 * should not pay that per test file) and hands its endpoint to the tests:
 * `inject('dynamoDbLocalEndpoint')`. Each test file creates its own tables in it.
 */
import type { TestProject } from 'vitest/node';
import { startDynamoDbLocal } from './helpers/engines.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoDbLocalEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dynamoDbLocal = await startDynamoDbLocal();
  project.provide('dynamoDbLocalEndpoint', dynamoDbLocal.endpoint);
  return () => dynamoDbLocal.close();
}
