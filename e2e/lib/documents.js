// Every GraphQL document the end-to-end tests send, in one place, so that
// schema.test.js can validate all of them against the server's schema: a
// breaking schema change then fails here, as it would fail the frontends.
import { parse } from 'graphql';

const taskFields = /* GraphQL */ `
  fragment TaskFields on Task {
    id
    title
    description
    completed
    createdAt
    updatedAt
  }
`;

/** The documents, as source text; `docs` has them parsed. */
export const sources = {
  Me: `query Me { me { id email name } }`,

  Task: `query Task($id: ID!) { task(id: $id) { ...TaskFields } } ${taskFields}`,

  Tasks: `
    query Tasks($first: Int, $after: String, $filter: TaskFilter, $orderBy: TaskOrder) {
      tasks(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
        edges { cursor node { ...TaskFields } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        totalCount
      }
    }
    ${taskFields}`,

  TaskTitles: `query TaskTitles { tasks(first: 100) { nodes { id title completed } totalCount } }`,

  TaskStats: `query TaskStats { taskStats { total completed active } }`,

  CreateTask: `
    mutation CreateTask($input: CreateTaskInput!) { createTask(input: $input) { ...TaskFields } }
    ${taskFields}`,

  UpdateTask: `
    mutation UpdateTask($id: ID!, $input: UpdateTaskInput!) { updateTask(id: $id, input: $input) { ...TaskFields } }
    ${taskFields}`,

  ToggleTask: `mutation ToggleTask($id: ID!) { toggleTask(id: $id) { ...TaskFields } } ${taskFields}`,

  DeleteTask: `mutation DeleteTask($id: ID!) { deleteTask(id: $id) { ...TaskFields } } ${taskFields}`,

  DeleteCompletedTasks: `mutation DeleteCompletedTasks { deleteCompletedTasks }`,

  TaskChanged: `subscription TaskChanged { taskChanged { kind task { ...TaskFields } } } ${taskFields}`,

  /** What the browser test types into GraphiQL's editor. */
  IDEQuery: `query FromTheIDE { tasks(first: 10) { nodes { id title completed } totalCount } }`,
};

/** The documents parsed, for Apollo Client and urql. */
export const docs = Object.fromEntries(Object.entries(sources).map(([name, src]) => [name, parse(src)]));
