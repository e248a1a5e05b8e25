export { dataSource } from './datasource.js';
