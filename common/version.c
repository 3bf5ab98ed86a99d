/* placeholder: being written */
typedef int oz_placeholder_version;
