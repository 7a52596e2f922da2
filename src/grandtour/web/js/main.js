/** The page served by `grandtour serve`: the viewer over HTTP (the same origin and path prefix). */
import { boot } from './app.js';
import { HttpDataSource } from './datasource.js';

boot(new HttpDataSource());
